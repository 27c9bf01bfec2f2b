"""Time and peak memory of a forecast from an export with 100,000 open deals (``salesops forecast`` as a function).

The export (Maven's columns, read with the shipped ``maven_sales_pipeline`` mapping) holds two years of closed deals
and, on the as-of date, ``--open`` deals still open at ages spread over their cycle. Printed: the time to read, audit
and fit the export and take its pipeline, the time to simulate the forecast (wall and CPU seconds: on a shared
machine the wall time depends on the load, printed before and after), and the peak memory.
Run with ``python benchmarks/forecast_speed.py [--open 100000] [--replications 200] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from calibration import load_mapping, read_export
from experiments.forecast import fit_cut, run_forecast

AS_OF = pd.Timestamp("2026-12-31")


def export_with_open_deals(open_deals: int, closed_deals: int, seed: int = 0) -> pd.DataFrame:
    """Closed deals created over two years before the as-of date, and ``open_deals`` created in its last 90 days
    and still open; three products as segments, win rate about 40%, gamma cycle times."""
    rng = np.random.default_rng(seed)
    created_closed = AS_OF - pd.to_timedelta(rng.uniform(90, 730, closed_deals), unit="D")
    closed_at = created_closed + pd.to_timedelta(rng.gamma(2.0, 20.0, closed_deals), unit="D")
    closed_at = closed_at.where(closed_at <= AS_OF, AS_OF)
    won = rng.random(closed_deals) < 0.4
    created_open = AS_OF - pd.to_timedelta(rng.uniform(0, 90, open_deals), unit="D")
    n = closed_deals + open_deals
    return pd.DataFrame({
        "opportunity_id": [f"O{i:08d}" for i in range(n)],
        "sales_agent": rng.choice([f"agent {i}" for i in range(300)], n),
        "product": rng.choice(["GTX Basic", "MG Advanced", "GTK 500"], n, p=[0.6, 0.3, 0.1]),
        "account": "acme",
        "deal_stage": np.r_[np.where(won, "Won", "Lost"), np.full(open_deals, "Engaging")],
        "engage_date": np.r_[created_closed.strftime("%Y-%m-%d"), created_open.strftime("%Y-%m-%d")],
        "close_date": np.r_[closed_at.strftime("%Y-%m-%d"), np.full(open_deals, "")],
        "close_value": np.r_[np.where(won, np.round(rng.lognormal(8, 0.8, closed_deals), 2), 0.0), np.zeros(open_deals)],
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--closed", type=int, default=200_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sales_pipeline.csv"
        export_with_open_deals(args.open, args.closed).to_csv(path, index=False)
        source, mapping = load_mapping("maven_sales_pipeline")
        load_before = os.getloadavg()[0]
        started, cpu = time.perf_counter(), _cpu_seconds()
        cut = fit_cut(read_export(path, mapping, source), mapping, AS_OF.date())
        fitted, fitted_cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        started, cpu = time.perf_counter(), _cpu_seconds()
        forecast = run_forecast(cut, args.months, Path(folder) / "pipeline.csv", args.replications, workers=args.workers)
        simulated, simulated_cpu = time.perf_counter() - started, _cpu_seconds() - cpu
    deals = int(cut.pipeline["kind"].eq("opportunity").sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    total = forecast.monthly[forecast.monthly["segment"].eq("all")]["won_mean"].sum()
    print(f"open deals in the pipeline: {deals:,}; {args.replications} replications of {args.months} months, {args.workers} workers")
    print(f"read, audit, fit and pipeline: {fitted:.1f} s ({fitted_cpu:.1f} CPU s); forecast: {simulated:.1f} s "
          f"({simulated_cpu:.1f} CPU s, all processes); total {fitted + simulated:.1f} s")
    print(f"peak memory: {peak:.0f} MB (main), {children:.0f} MB (largest worker); won forecast over the months: {total:,.0f}")
    print(f"load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f}, on {os.cpu_count()} cores")


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished workers (a pool's workers count once they have ended)."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


if __name__ == "__main__":
    main()
