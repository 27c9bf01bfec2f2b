"""Wall time and peak memory of one replication of the shipped scenarios (median of several runs).

Each case runs in a fresh process so that its peak resident memory is its own. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from engine import run_replication
from scenarios import load_scenario


def measure(name: str, runs: int) -> dict[str, float]:
    scenario = load_scenario(name)
    seconds = []
    for replication in range(runs):
        began = time.perf_counter()
        result = run_replication(scenario, replication)
        seconds.append(time.perf_counter() - began)
    leads = result.totals["leads"]
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "leads": leads,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("scenarios", nargs="*", default=["baseline", "large"])
    args = parser.parse_args()
    print(f"{'scenario':<12}{'median s':>10}{'min s':>10}{'leads':>12}{'µs/lead':>10}{'peak MB':>10}")
    figures = {}
    for name in args.scenarios:
        with ProcessPoolExecutor(max_workers=1) as pool:
            figures[name] = f = pool.submit(measure, name, args.runs).result()
        print(f"{name:<12}{f['median_s']:>10.2f}{f['min_s']:>10.2f}{f['leads']:>12,.0f}"
              f"{f['median_s'] / f['leads'] * 1e6:>10.1f}{f['peak_mb']:>10.0f}")
    if {"baseline", "large"} <= figures.keys():
        ratio = figures["large"]["median_s"] / figures["baseline"]["median_s"]
        print(f"large / baseline wall time: {ratio:.1f}x for "
              f"{figures['large']['leads'] / figures['baseline']['leads']:.1f}x the leads")


if __name__ == "__main__":
    main()
