"""Sweep speed on the shipped baseline: cells per minute on 1 and 2 workers, and MLflow tracking cost per cell.

    python benchmarks/sweep_speed.py [--cells 6] [--replications 4]

Each cell is the 18-month baseline with a different AE hiring plan. The tracking overhead is measured by
re-running a finished sweep against a fresh MLflow store: nothing is simulated, every cell is only logged (a nested
run with its parameters, 52 KPI metrics, the monthly series by log_batch and six artifact files).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

from engine import Results
from experiments.cells import CellStore, cell_key
from experiments.runner import executor
from experiments.sweep import run_sweep
from experiments.sweep_spec import load_sweep
from experiments.tracking import MlflowTracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--replications", type=int, default=4)
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
        rates = {}
        for workers in (1, 2):
            with executor(workers) as pool:
                start = time.perf_counter()
                run_sweep(sweep, root / f"w{workers}", pool)
                seconds = time.perf_counter() - start
            rates[workers] = len(sweep.cells) / seconds * 60
            print(f"  {workers} worker(s): {seconds:6.1f} s, {rates[workers]:5.1f} cells/min")
        print(f"  speed-up, 2 workers over 1: {rates[2] / rates[1]:.2f}×")

        uri = f"sqlite:///{root / 'mlflow.db'}"
        start = time.perf_counter()
        MlflowClient(tracking_uri=uri).search_experiments()
        print(f"  new MLflow SQLite store: {time.perf_counter() - start:.1f} s (once per store)")
        tracker = MlflowTracker(uri)
        with executor() as pool:
            start = time.perf_counter()
            run_sweep(sweep, root / "w1", pool, tracker)
            seconds = time.perf_counter() - start
        print(f"  tracking: {seconds / len(sweep.cells) * 1000:.0f} ms per cell (all {len(sweep.cells)} cells logged from their files in {seconds:.1f} s)")
        runs = CellStore(root / "w1" / "cells").read(cell_key(sweep.cells[0].scenario, args.replications, sweep.seed)).runs
        start = time.perf_counter()
        Results.from_replications(runs)
        print(f"    of which the engine's summary and monthly bands of a cell: {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
