"""Win/loss analysis: coverage of planted odds ratios and false flags of null attributes over many seeds, and the
time of ``salesops winloss`` on the real IBM and Maven exports with their shipped mappings.

Run with ``PYTHONPATH=. python benchmarks/winloss_power.py [--seeds 100] [--deals 1500]``. The IBM and Maven runs
need ``../shared/data`` beside the checkout; they are timed as subprocesses (wall clock and CPU, imports included).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.planted_export import NULL_ATTRIBUTES, PLANTED
from tests.test_winloss import analyse_planted

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = {
    "IBM": ["ibm-sales-win-loss/WA_Fn-UseC_-Sales-Win-Loss.csv", "ibm_sales_win_loss"],
    "Maven": ["maven-crm-sales-opportunities/sales_pipeline.csv", "maven_sales_pipeline", "--territory-by", "office"],
}


def power(seeds: int, deals: int) -> None:
    covered = {key: 0 for key in PLANTED}
    null_flags, found, leakage = [], [], 0
    start = time.process_time()
    for seed in range(seeds):
        result = analyse_planted(seed, deals)
        rows = result.levels.set_index(["attribute", "level"])
        for key, ratio in PLANTED.items():
            covered[key] += bool(rows.loc[key, "or_low"] <= ratio <= rows.loc[key, "or_high"])
        by_name = {info["attribute"]: info for info in result.attributes}
        null_flags.append(np.mean([by_name[name]["significant"] for name in NULL_ATTRIBUTES]))
        found.append(np.mean([by_name[name]["significant"] for name in ("product", "channel")]))
        leakage += by_name["days_in_stage"]["status"] == "leakage"
    cpu = time.process_time() - start
    print(f"planted export: {seeds} seeds x {deals:,} deals, {cpu / seeds * 1000:.0f} ms CPU per analysis")
    for (attribute, level), ratio in PLANTED.items():
        print(f"  OR {attribute}={level} planted {ratio:g}: inside its 95% interval in {covered[(attribute, level)] / seeds:.0%} of seeds")
    print(f"  null attributes flagged after BH adjustment: {np.mean(null_flags):.1%} on average "
          f"(worst seed {max(null_flags):.0%}); planted attributes found: {np.mean(found):.0%}")
    print(f"  leakage attribute days_in_stage flagged in {leakage}/{seeds} seeds")


def real_exports() -> None:
    if not DATA.is_dir():
        print(f"real exports skipped: {DATA} not found")
        return
    for name, (relative, mapping, *extra) in REAL.items():
        with tempfile.TemporaryDirectory() as folder:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "experiments", "winloss", str(DATA / relative), "-m", mapping, *extra,
                            "--out", folder], check=True, capture_output=True, env=os.environ)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(f"{name}: salesops winloss end to end {wall:.1f} s wall, {cpu:.1f} s CPU (with report and imports)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--deals", type=int, default=1500)
    parser.add_argument("--skip-real", action="store_true")
    arguments = parser.parse_args()
    power(arguments.seeds, arguments.deals)
    if not arguments.skip_real:
        real_exports()
