"""The known-truth study of calibration over many generated exports (tests/calibration_truth.py: three segments,
cycle medians 30 / 75 / 150 days, a 150-deal segment, a third of the deals open): per segment, the coverage of
the won rate's 95% interval, the mean error of its estimate, the fitted median times to win and to lose against
the truth, and the same figures for the won share among closed deals (a fit that drops open deals).
Run with ``python benchmarks/calibration_truth.py [--seeds 200]``; tests/test_calibration_outcomes.py runs 24.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.calibration_truth import SEGMENTS, study  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args()
    began = time.perf_counter()
    results = study(range(args.seeds))
    print(f"{args.seeds} exports in {time.perf_counter() - began:.0f} s")
    for name, truth in SEGMENTS.items():
        rows = results[results["segment"] == name]
        coverage = ((rows["lower"] <= truth.won_rate) & (truth.won_rate <= rows["upper"])).mean()
        win = float(np.exp(np.log(rows["win_median"]).mean()))
        lose = float(np.exp(np.log(rows["lose_median"]).mean()))
        print(f"{name:>10} ({truth.deals:,} deals): won rate {truth.won_rate:.2f}, coverage {coverage:.1%}, "
              f"mean error {rows['rate'].mean() - truth.won_rate:+.4f} (closed only: {rows['naive'].mean() - truth.won_rate:+.4f}); "
              f"median days to win {win:.1f} / {truth.win_median:g} ({win / truth.win_median - 1:+.1%}), "
              f"to lose {lose:.1f} / {truth.lose_median:g} ({lose / truth.lose_median - 1:+.1%})")


if __name__ == "__main__":
    main()
