"""Audit and fit time and peak memory of calibration on a synthetic 1-million-row CRM export.

The export is drawn directly from known distributions (no engine run) and written to a temporary folder, then
read, audited and fitted, and its snapshot and calibration file (with parameter draws) built, as `salesops
calibrate` would. Run with ``python benchmarks/calibration_speed.py``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from calibration import Calibration, audit, load_mapping, read_export


def synthetic_export(rows: int, seed: int = 0) -> pd.DataFrame:
    """Opportunities over two years: three segments, win rate 30–45 %, gamma cycle times, lognormal amounts."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01")
    created = start + pd.to_timedelta(np.sort(rng.uniform(0, 730, rows)), unit="D")
    segment = rng.choice(["smb", "mid_market", "enterprise"], rows, p=[0.6, 0.3, 0.1])
    won = rng.random(rows) < np.select([segment == "smb", segment == "mid_market"], [0.45, 0.35], 0.3)
    closed = created + pd.to_timedelta(rng.gamma(2.0, 20.0, rows), unit="D")
    as_of = start + pd.Timedelta(days=730)
    open_ = closed > as_of
    status = np.where(open_, "Engaging", np.where(won, "Won", "Lost"))
    amount = np.where(won & ~open_, np.round(rng.lognormal(9, 0.7, rows), 2), 0.0)
    return pd.DataFrame({
        "opportunity_id": [f"O{i:08d}" for i in range(rows)],
        "sales_agent": rng.choice([f"agent {i}" for i in range(200)], rows),
        "product": segment,
        "account": "acme",
        "deal_stage": status,
        "engage_date": created.strftime("%Y-%m-%d"),
        "close_date": pd.Series(closed.strftime("%Y-%m-%d")).where(~open_, ""),
        "close_value": amount,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        synthetic_export(args.rows).to_csv(path, index=False)
        size_mb = path.stat().st_size / 1e6
        baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        source, mapping = load_mapping("maven_sales_pipeline")
        began = time.perf_counter()
        raw = read_export(path, mapping, source)
        read_s = time.perf_counter() - began
        checked = audit(raw, mapping)
        audit_s = time.perf_counter() - began - read_s
        fitted = Calibration().fit(checked)
        fit_s = time.perf_counter() - began - read_s - audit_s
        fitted.snapshot(checked.used)
        fitted.to_dict(snapshot="pipeline.csv")
        out_s = time.perf_counter() - began - read_s - audit_s - fit_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows {args.rows:,} ({size_mb:.0f} MB): read {read_s:.1f} s, audit {audit_s:.1f} s, fit {fit_s:.1f} s, "
          f"snapshot and calibration file {out_s:.1f} s, total {read_s + audit_s + fit_s + out_s:.1f} s; peak memory {peak_mb:,.0f} MB (before reading: {baseline_mb:,.0f} MB)")


if __name__ == "__main__":
    main()
