"""Running replications in this process or in a pool of processes, with identical results either way."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable

from engine import ReplicationResult, Results, run_replication
from scenarios import Scenario


def run_replications(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    workers: int = 1,
    on_replication: Callable[[int], None] | None = None,
    keep_log: bool = False,
) -> Results:
    """Simulate replications 0..n-1, in ``workers`` processes when more than one; results are in replication order."""
    done: dict[int, ReplicationResult] = {}
    if workers <= 1:
        for replication in range(replications):
            done[replication] = run_replication(scenario, replication, seed, keep_log)
            if on_replication:
                on_replication(replication)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run_replication, scenario, r, seed, keep_log): r for r in range(replications)}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                if on_replication:
                    on_replication(futures[future])
    return Results.from_replications([done[r] for r in range(replications)])
