"""Sweep speed on the shipped baseline: cells per minute on 1 and 2 workers, and what MLflow tracking adds.

    python benchmarks/sweep_speed.py [--cells 40] [--replications 10] [--repeats 1]

Each cell is the 18-month baseline with a different AE hiring plan. For 1 and 2 workers the whole sweep runs
untracked and tracked (a fresh output folder each time, against an MLflow SQLite store created beforehand), so
the overhead is the difference in wall time. Then a finished sweep is re-run, untracked and tracked: nothing is
simulated, so the difference is the work of logging the cells (done on its own thread during a sweep).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

from experiments.runner import executor
from experiments.sweep import run_sweep
from experiments.sweep_spec import load_sweep
from experiments.tracking import MlflowTracker, NullTracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case; the median is shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec = root / "sweep.yaml"
        spec.write_text(
            f"name: speed\nscenario: baseline\nfactors:\n  roles.ae.hiring_plan.2027-03: {list(range(args.cells))}\n"
            f"replications: {args.replications}\nseed: 1\n",
            encoding="utf-8",
        )
        sweep = load_sweep(spec)
        print(f"baseline, 18 months: {len(sweep.cells)} cells × {args.replications} replications")
        start = time.perf_counter()
        MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").search_experiments()
        print(f"  new MLflow SQLite store: {time.perf_counter() - start:.1f} s (once per store, not counted below)")
        runs = 0

        def timed(workers: int, tracked: bool, out: Path | None = None) -> float:
            """One sweep's wall time, in a new folder (or ``out``), tracked in a new experiment if ``tracked``."""
            nonlocal runs
            runs += 1
            tracker = MlflowTracker(f"sqlite:///{root / 'mlflow.db'}", f"speed-{runs}") if tracked else NullTracker()
            with executor(workers) as pool:
                start = time.perf_counter()
                run_sweep(sweep, out or root / f"run-{runs}", pool, tracker)
                return time.perf_counter() - start

        rates = {}
        for workers in (1, 2):
            plain = statistics.median(timed(workers, False) for _ in range(args.repeats))
            tracked = statistics.median(timed(workers, True) for _ in range(args.repeats))
            rates[workers] = len(sweep.cells) / plain * 60
            print(f"  {workers} worker(s): {plain:6.1f} s, {rates[workers]:5.1f} cells/min; tracked {tracked:6.1f} s:"
                  f" tracking adds {(tracked - plain) / plain:+.1%} of the sweep's time")
        print(f"  speed-up, 2 workers over 1: {rates[2] / rates[1]:.2f}×")
        seconds_per_cell = 60 / rates[1]
        rerun = timed(1, False, root / "run-1")  # nothing to simulate: reading the cells and writing the tables
        logging_only = timed(1, True, root / "run-1")  # the same, and every cell logged to a new experiment
        per_cell = (logging_only - rerun) / len(sweep.cells)
        print(f"  logging one cell: {per_cell * 1000:.0f} ms"
              f" ({per_cell / seconds_per_cell:.1%} of a cell's {seconds_per_cell:.2f} s on one worker)")


if __name__ == "__main__":
    main()
