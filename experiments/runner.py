"""Running units of work in this process, in a pool of processes or on a Dask cluster, with identical results.

Workers only compute: they return plain results, and the caller (the main process) writes files and logs. Each
task is a pure function call, so where it runs changes nothing in what it returns.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator, Mapping

from engine import ReplicationResult, Results, run_replication
from scenarios import Scenario

#: A finished task: its key, its value (None if it raised) and the exception it raised (None if it did not).
Outcome = tuple[Hashable, Any, BaseException | None]


class ExecutorError(RuntimeError):
    """An executor that cannot start: Dask missing, or a scheduler that does not answer."""


class Executor:
    """Runs ``fn(*args)`` for each task and yields outcomes as they finish; one process, no pool."""

    def run(self, fn: Callable[..., Any], tasks: Mapping[Hashable, tuple]) -> Iterator[Outcome]:
        for key, args in tasks.items():
            try:
                value = fn(*args)
            except Exception as error:  # noqa: BLE001 - the caller decides what a failed task means
                yield key, None, error
            else:
                yield key, value, None


class PoolExecutor(Executor):
    """A local pool of ``workers`` processes."""

    def __init__(self, pool: ProcessPoolExecutor):
        self.pool = pool

    def run(self, fn: Callable[..., Any], tasks: Mapping[Hashable, tuple]) -> Iterator[Outcome]:
        futures = {self.pool.submit(fn, *args): key for key, args in tasks.items()}
        try:
            for future in as_completed(futures):
                error = future.exception()
                yield futures[future], None if error else future.result(), error
        finally:
            for future in futures:
                future.cancel()


class DaskExecutor(Executor):
    """A ``dask.distributed`` client: a remote scheduler, or a local cluster made for the run."""

    def __init__(self, client: Any):
        self.client = client

    def run(self, fn: Callable[..., Any], tasks: Mapping[Hashable, tuple]) -> Iterator[Outcome]:
        from dask.distributed import as_completed as dask_completed

        futures = {self.client.submit(fn, *args, pure=False): key for key, args in tasks.items()}
        try:
            for future in dask_completed(list(futures)):
                error = future.exception() if future.status == "error" else None
                yield futures[future], None if error else future.result(), error
        finally:
            self.client.cancel(list(futures))


@contextmanager
def executor(workers: int = 1, scheduler: str | None = None) -> Iterator[Executor]:
    """This process (1 worker), a process pool (``workers`` > 1) or Dask (``scheduler``: ``local`` or an address)."""
    if scheduler is None:
        if workers <= 1:
            yield Executor()
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield PoolExecutor(pool)
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError("--scheduler needs Dask: pip install 'salesops[dask]'") from None
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        )
        with cluster, Client(cluster) as client:
            yield DaskExecutor(client)
        return
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as error:
        raise ExecutorError(f"--scheduler {scheduler}: no Dask scheduler answers ({error})") from None
    with client:
        yield DaskExecutor(client)


def replicate(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    workers: int = 1,
    on_replication: Callable[[int], None] | None = None,
    keep_log: bool = False,
) -> list[ReplicationResult]:
    """Replications 0..n-1 in replication order, in ``workers`` processes when more than one; a failure raises."""
    done: dict[int, ReplicationResult] = {}
    tasks = {r: (scenario, r, seed, keep_log) for r in range(replications)}
    with executor(workers) as pool:
        for replication, result, error in pool.run(run_replication, tasks):
            if error is not None:
                raise error
            done[replication] = result  # type: ignore[index]
            if on_replication:
                on_replication(replication)  # type: ignore[arg-type]
    return [done[r] for r in range(replications)]


def run_replications(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    workers: int = 1,
    keep_log: bool = False,
) -> Results:
    """Simulate replications 0..n-1, in ``workers`` processes when more than one; results are in replication order."""
    return Results.from_replications(replicate(scenario, replications, seed, workers, keep_log=keep_log))
