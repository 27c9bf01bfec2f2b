"""Headcount planning: kernels against the engine, the plan against its constraints and the simulated target."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from engine import simulate
from optimizers.headcount import HeadcountOptions, apply_plan, check_plan, plan_headcount
from optimizers.headcount_data import cohort
from scenarios import load_scenario

SHORT = ["horizon_months=12"]
TARGET = 18e6  # a year of the baseline books about 16 million


@pytest.fixture(scope="module")
def short_baseline():
    return load_scenario("baseline", SHORT)


@pytest.fixture(scope="module")
def report(short_baseline):
    return plan_headcount(short_baseline, HeadcountOptions(target_bookings=TARGET, replications=16, seed=3))


def test_cohort_kernel_matches_the_engine():
    """Expected headcount of a staff with attrition and backfill, by the kernel and by simulating many reps."""
    scenario = load_scenario("mmc", [
        "roles.server.headcount.only=400", "roles.server.attrition_hazard=[0.08, 0.05]", "roles.server.backfill=true",
        "roles.server.backfill_lag_months=1", "roles.server.ramp=[0.5]", "horizon_months=10",
        "lead_sources.arrivals.monthly_volume=10",
    ])
    kernel = cohort(scenario.roles["server"], 10, veteran=True)
    monthly = simulate(scenario, 4).monthly.groupby("month").mean(numeric_only=True)
    assert np.allclose(monthly["headcount_server"], 400 * kernel.at_month_end, rtol=0.03)
    # the kernel's ramped reps are a time average over the month, the engine's a month-end count
    assert np.allclose(monthly["ramped_server"], 400 * kernel.ramped, rtol=0.05)


def test_plan_meets_the_target_with_a_new_seed_and_more_replications(report, short_baseline):
    assert report.status == "met"
    check, _ = check_plan(report.scenario, TARGET, 40, seed=1234, run=lambda s, n, seed: simulate(s, n, seed))
    assert check.interval[1] >= 0.8, check  # the asked confidence lies within the 95% interval or below it


def test_plan_respects_every_constraint_recomputed_from_the_plan(report, short_baseline):
    plan = pd.DataFrame(report.plan.rows())
    for role, spec in short_baseline.roles.items():
        hires = plan[plan["role"] == role]
        if spec.max_hires_per_month is not None and len(hires):
            assert hires.groupby("month")["hires"].sum().max() <= spec.max_hires_per_month
        if len(hires):
            last_useful = short_baseline.horizon_months - spec.hiring_lag_months
            assert all(short_baseline.month_index(m) < last_useful for m in hires["month"])
    monthly = simulate(report.scenario, 8, seed=99).monthly.groupby("month").mean(numeric_only=True)
    for role in ("sdr", "ae"):
        ceiling = short_baseline.roles[role].max_headcount
        assert monthly[f"headcount_{role}"].max() <= ceiling + 1.0
    assert report.plan.expected_cost == pytest.approx(report.check.cost["mean"], rel=0.03)


def test_hiring_the_same_people_earlier_costs_more(report):
    earlier: dict[tuple[str, str, str], int] = {}
    for (role, territory, month), count in report.plan.hires.items():
        key = (role, territory, _previous(month) or month)
        earlier[key] = earlier.get(key, 0) + count
    assert earlier != report.plan.hires
    run = lambda s, n, seed: simulate(s, n, seed)  # noqa: E731
    planned, _ = check_plan(report.scenario, TARGET, 6, 5, run)
    shifted, _ = check_plan(apply_plan(report.scenario, earlier), TARGET, 6, 5, run)
    assert shifted.cost["mean"] > planned.cost["mean"]


def _previous(month: str) -> str | None:
    year, number = int(month[:4]), int(month[5:])
    if (year, number) == (2027, 1):
        return None
    return f"{year - (number == 1):04d}-{(number - 2) % 12 + 1:02d}"


def test_plan_is_cheaper_than_a_naive_plan_that_reaches_the_target(report, short_baseline):
    """Hiring at once in the first month, in today's ratio, enough to reach the target, costs more."""
    run = lambda s, n, seed: simulate(s, n, seed)  # noqa: E731
    for owners in range(2, 20, 2):
        firsts = owners  # today's ratio: 20 first-touch reps to 20 opportunity reps
        hires = {("ae", "north", "2027-01"): owners // 2, ("ae", "south", "2027-01"): owners - owners // 2,
                 ("sdr", "east", "2027-01"): firsts // 2, ("sdr", "west", "2027-01"): firsts - firsts // 2}
        check, _ = check_plan(apply_plan(short_baseline, hires), TARGET, 16, 3, run)
        if check.probability >= 0.8:
            break
    assert check.probability >= 0.8
    assert check.cost["mean"] > report.check.cost["mean"]


def test_zero_margin_means_hiring_nobody(short_baseline):
    report = plan_headcount(short_baseline, HeadcountOptions(
        target_bookings=None, objective="margin", gross_margin=0.0, replications=2))
    assert report.plan.total("sdr") == 0 and report.plan.total("ae") == 0


def test_unreachable_target_is_explained_and_exits_non_zero(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "experiments", "optimize", "headcount", "baseline", "--target-bookings", "1e9",
         "--out", str(tmp_path), "-n", "2", "--set", "roles.ae.max_hires_per_month=1",
         "--set", "roles.sdr.max_hires_per_month=1", "--set", "horizon_months=6"],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr + completed.stdout
    message = completed.stderr
    assert "the target cannot be reached" in message and "bookings target" in message
    assert "recruiting capacity" in message
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "infeasible"


def test_time_limit_returns_the_best_plan_with_its_gap(tmp_path):
    """Asked to prove optimality (gap 0) in 2 s, HiGHS stops at the limit: the plan found so far comes back, with
    the gap it reached, and is written like any other."""
    completed = subprocess.run(
        [sys.executable, "-m", "experiments", "optimize", "headcount", "baseline", "--target-bookings", "34e6",
         "--out", str(tmp_path), "-n", "4", "--time-limit", "2", "--gap", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in completed.stderr + completed.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    solver = report["iterations"][0]["solver"]
    assert solver["termination"] == "time_limit" and solver["status"] == "feasible"
    assert 0 < solver["gap"] < 0.05
    assert len(pd.read_csv(tmp_path / "plan.csv")) > 0 and (tmp_path / "scenario.yaml").exists()
