"""The closing pace: a month's pace stretches or shrinks the time open deals take, deal by deal as the clock says;
simulated run-off under a random pace has the mean and the spread the pace's law gives; calibration recovers the
spread of a pace planted in generated history, and finds none where there is none."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from calibration.estimators import WON, OutcomeFit
from calibration.pace import ClosingPaceFit
from engine import simulate
from engine.calendar import DealClock
from engine.initial import carried_work, forget_warm_ups
from scenarios import load_scenario
from tests.test_initial_state import RUNOFF, write_case

MONTHS = np.array([0.0, 31.0, 59.0])  # January and February


def test_a_pace_of_one_every_month_is_the_calendar():
    """The paced clock at pace 1 reads the calendar (to rounding), within the horizon and beyond it."""
    start, days = np.array([0.0, 3.7, np.nan, 58.9]), np.array([12.3, 0.1, 4.0, 200.0])
    np.testing.assert_allclose(DealClock(MONTHS, np.ones(2)).after(start, days), start + days, rtol=1e-12)


def test_a_month_at_pace_two_halves_the_calendar_time():
    """Pace 2 in January, 0.5 in February, 1 after the horizon: 31 deal days from day 0 end on day 15.5; 50 from day
    10 (20 deal days in) reach January's end at 62 and need 8 more at half speed, 16 days: day 47; 100 from day 0 end
    76 deal days into the horizon's 59 calendar days, then 24 more at pace 1: day 83."""
    clock = DealClock(MONTHS, np.array([2.0, 0.5]))
    assert clock.after(np.array([0.0, 10.0, 0.0]), np.array([31.0, 50.0, 100.0])) == pytest.approx([15.5, 47.0, 83.0])
    assert np.isnan(clock.after(np.nan, 5.0))


def _runoff(month_sd: float | None) -> dict:
    """Deals that all win after an exponential time of mean 60 days, no new leads, ample capacity."""
    scenario = copy.deepcopy(RUNOFF)
    scenario["funnel"]["stages"][0].update({"conversion": {"default": 1.0}, "duration_days": {"default": {"dist": "exponential", "mean": 60.0}},
                                             "lost_duration_days": None})
    scenario["roles"]["ae"]["open_opportunity_limit"] = 10_000
    scenario["funnel"]["closing_pace"] = None if month_sd is None else {"month_sd": month_sd}
    return scenario


def _won_by_month(tmp_path, month_sd: float | None, deals: int, replications: int, seed: int) -> np.ndarray:
    """Won per replication (rows) and month (columns) of ``deals`` new deals under ``_runoff``."""
    scenario = _runoff(month_sd)
    rows = [f"opportunity,d{i},smb,north,close,0,,,," for i in range(deals)]
    monthly = simulate(load_scenario(write_case(tmp_path, rows, scenario)), replications, seed=seed).monthly
    return monthly.pivot(index="replication", columns="month", values="won").to_numpy()


def test_runoff_under_a_random_pace_has_the_mean_and_spread_of_its_law(tmp_path):
    """Exponential times (mean μ = 60 days) are memoryless, so a deal open at a month's start closes in it with
    chance 1 − exp(−g·L/μ) for that month's pace g and length L. Over lognormal paces of mean 1 and log sd 0.4
    (Gauss–Hermite over g), the simulated mean per month and the spread of January's closes across replications
    match; without a pace that spread is the binomial one, far smaller."""
    sd, deals, replications, mean_days = 0.4, 400, 300, 60.0
    won = _won_by_month(tmp_path, sd, deals, replications, seed=5)
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    pace = np.exp(sd * nodes - sd**2 / 2)
    lengths = np.diff(np.r_[0.0, np.cumsum([31, 28, 31, 30, 31, 30])])
    stay = np.array([weights @ np.exp(-pace * length / mean_days) for length in lengths])  # E[open through a month]
    still_open = np.r_[1.0, np.cumprod(stay)[:-1]]
    expected = deals * still_open * (1 - stay)
    error = won.std(axis=0, ddof=1) / np.sqrt(replications)
    assert np.all(np.abs(won.mean(axis=0) - expected) < 4 * error), (won.mean(axis=0), expected)
    closes = 1 - np.exp(-pace * lengths[0] / mean_days)
    variance = deals * weights @ (closes * (1 - closes)) + deals**2 * (weights @ closes**2 - (weights @ closes) ** 2)
    assert won[:, 0].var(ddof=1) == pytest.approx(variance, rel=0.25)
    steady = _won_by_month(tmp_path, None, deals, replications, seed=5)
    p = 1 - np.exp(-lengths[0] / mean_days)
    assert steady[:, 0].var(ddof=1) == pytest.approx(deals * p * (1 - p), rel=0.25)
    assert variance > 4 * deals * p * (1 - p)


def test_the_warm_up_runs_at_pace_one_so_carried_deals_keep_their_own_days():
    """A pace belongs to the horizon's months: the work a warm-up carries in is the same with and without one (a
    deal slowed in the warm-up and carried in with its days reckoned unpaced would have time left below zero)."""
    steady, paced = load_scenario("baseline"), load_scenario("baseline", ["funnel.closing_pace={month_sd: 1.0}"])
    for replication in range(2):
        carried = []
        for scenario in (steady, paced):
            forget_warm_ups()  # each simulated, not the second read back as the first's
            carried.append(carried_work(scenario, 3, replication))
        for name, values in vars(carried[0]).items():
            np.testing.assert_array_equal(values, getattr(carried[1], name), err_msg=name)
        assert (carried[1].deal_holding >= 0).all()


def _history(month_sd: float, seed: int, rows: int = 30_000, months: int = 24) -> tuple[pd.Series, np.ndarray, np.ndarray, pd.Timestamp]:
    """Deals entering uniformly over ``months`` months, each closing after an exponential time of mean 40 deal days,
    on a clock whose monthly pace is lognormal with log sd ``month_sd``: entry times, days to close or to the end, closed."""
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp("2025-01-01")
    edges = np.array([(origin + pd.DateOffset(months=k) - origin).days for k in range(months + 1)], dtype=float)
    pace = np.exp(month_sd * rng.standard_normal(months) - month_sd**2 / 2)
    entered = np.sort(rng.uniform(0, edges[-1], rows))
    close = DealClock(edges, pace).after(entered, rng.exponential(40.0, rows))
    closed = close < edges[-1]
    days = np.where(closed, close, edges[-1]) - entered
    return pd.Series(origin + pd.to_timedelta(entered, unit="D")), days, closed, origin + pd.Timedelta(days=edges[-1])


@pytest.mark.parametrize("month_sd", [0.0, 0.3])
def test_calibration_recovers_the_spread_of_a_planted_pace(month_sd):
    """Over 8 histories of 24 months, the fitted month_sd averages the planted one (0 or 0.3) within 0.06, and its
    95% interval holds it in at least 7 of them; its draws follow the interval."""
    estimates, inside = [], 0
    for seed in range(8):
        start, days, closed, known_until = _history(month_sd, seed)
        model = OutcomeFit(("exponential",)).fit(days, np.where(closed, WON, 0))
        pace = ClosingPaceFit().fit(start, days, closed, model, known_until)
        estimates.append(pace.month_sd_)
        inside += pace.interval_[0] <= month_sd <= pace.interval_[1]
    assert np.mean(estimates) == pytest.approx(month_sd, abs=0.06), estimates
    assert inside >= 7, inside
    draws = pace.draws(4000, np.random.default_rng(0))
    assert np.quantile(draws, [0.025, 0.975]) == pytest.approx(pace.interval_, abs=0.011)  # the grid's step: 0.005
