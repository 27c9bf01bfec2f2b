"""Calibration against generated truth (tests/calibration_truth.py, no engine): competing outcomes from every deal,
partial pooling, the cure model, numbers as exports write them, the pipeline snapshot, parameter draws and the
audit's messages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats
from typer.testing import CliRunner

from calibration import Calibration, CalibrationError, apply_calibration, audit, load_mapping, read_export
from calibration.audit import plural
from calibration.calibrate import fit_groups

from calibration.estimators import OPEN, WON, ArrivalModel, OutcomeFit, PooledRates, fab_interval
from experiments.cli import app
from scenarios import read_scenario_data, validate_scenario
from scenarios.loading import apply_overrides
from tests.calibration_truth import CODES, SEGMENTS, Segment, cure_funnel, deals, export, study

#: Seeds of the fast study; benchmarks/calibration_truth.py runs the same study over 200.
SEEDS = 24


@pytest.fixture(scope="module")
def results():
    return study(range(SEEDS))


def test_generated_exports_have_a_third_open_and_a_small_segment():
    table = deals(0)
    assert 0.28 < table["outcome"].eq("open").mean() < 0.38
    assert (table["segment"] == "enterprise").sum() == 150


def test_won_rates_recovered_from_every_deal(results):
    """Every segment's true won rate is inside its 95% interval in at least 20 of 24 exports (at a true 95%, 19 or
    fewer has probability 0.6%; benchmarks/calibration_truth.py measures the coverage over 200 exports), and the
    mean error is under 0.02. The won share among closed deals, which drops the open third, is off by more than
    0.02 in every segment: lost deals close faster than won ones, so too few of the closed deals are won."""
    for name, truth in SEGMENTS.items():
        rows = results[results["segment"] == name]
        inside = ((rows["lower"] <= truth.won_rate) & (truth.won_rate <= rows["upper"])).sum()
        assert inside >= 20, (name, inside)
        assert abs(rows["rate"].mean() - truth.won_rate) < 0.02, (name, rows["rate"].mean())
        assert abs(rows["naive"].mean() - truth.won_rate) > 0.02, (name, rows["naive"].mean())


def test_fab_interval_covers_every_rate_at_the_nominal_rate():
    """Constant coverage (Yu & Hoff 2018): for y ~ N(θ, s²), 95% of the intervals hold θ whether θ sits at the
    prior's mean or three prior standard deviations away, and at the prior's mean the interval is shorter on
    average than the textbook y ± 1.96 s."""
    rng = np.random.default_rng(0)
    s, prior_sd = 0.3, 0.5
    for theta in (0.0, 3 * prior_sd):
        y = theta + s * rng.standard_normal(4000)
        bounds = np.array([fab_interval(value, s, 0.0, prior_sd**2) for value in y])
        coverage = ((bounds[:, 0] <= theta) & (theta <= bounds[:, 1])).mean()
        assert abs(coverage - 0.95) < 0.011, (theta, coverage)  # 3.2 standard errors of a 95% coverage
        if theta == 0.0:
            assert (bounds[:, 1] - bounds[:, 0]).mean() < 0.9 * 2 * 1.96 * s


def test_pooled_interval_of_a_group_far_from_the_others_keeps_its_coverage():
    """Three groups with fixed rates, the small one far below the others (the case where pooling pulls an estimate
    away from the truth): over 500 seeded draws of the groups' estimates, each group's interval holds its true
    rate at least 92.5% of the time (at a true 95%, falling below has probability 0.6%). The posterior interval
    does not: 89.6% for the small group on these draws."""
    rng = np.random.default_rng(0)
    groups = ["smb", "mid_market", "enterprise"]
    truth, s = special.logit(np.array([0.30, 0.25, 0.10])), np.array([0.05, 0.08, 0.4])
    inside = np.zeros(3)
    for seed in range(500):
        y = truth + s * rng.standard_normal(3)
        fit = PooledRates(n_draws=200, seed=seed).fit(pd.Series(special.expit(y), groups), pd.Series(s, groups),
                                                       pd.Series([3000, 1200, 150], groups))
        inside += (fit.by_group_["lower"].to_numpy() <= special.expit(truth)) & (special.expit(truth) <= fit.by_group_["upper"].to_numpy())
    assert (inside / 500 >= 0.925).all(), inside / 500


def test_times_to_win_and_to_lose_recovered_per_segment(results):
    """The geometric mean over exports of each segment's fitted median time to win and to lose is within 5% of
    the truth (the small segment's time to win, from about 15 wins each, takes the shared shape)."""
    for name, truth in SEGMENTS.items():
        rows = results[results["segment"] == name]
        for column, true in (("win_median", truth.win_median), ("lose_median", truth.lose_median)):
            estimate = float(np.exp(np.log(rows[column]).mean()))
            assert abs(estimate / true - 1) < 0.05, (name, column, estimate, true)


def test_small_segment_times_pooled_and_said_so():
    table = deals(3)
    durations, outcome, groups = table["days"].to_numpy(), table["outcome"].map(CODES).to_numpy(), table["segment"].to_numpy()
    pooled = OutcomeFit(("lognormal",), resolution_days=1 / 24, seed=3).fit(durations, outcome)
    rates, fits, objects, notes = fit_groups(durations, outcome, groups, pooled, resolution_days=1 / 24, seed=3)
    assert fits["enterprise"]["time_to_win"]["shape"] == "pooled" and fits["smb"]["time_to_win"]["shape"] == "own"
    assert any(note.startswith("enterprise: time to win pooled") for note in notes)
    shared = np.average([objects[g].won_params_[1] for g in ("smb", "mid_market")],
                        weights=[fits[g]["time_to_win"]["n_events"] for g in ("smb", "mid_market")])
    assert objects["enterprise"].won_params_[1] == pytest.approx(shared)
    assert rates.by_group_.at["smb", "shrinkage"] < 0.05 < rates.by_group_.at["enterprise", "shrinkage"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cure_fraction_and_converters_median_recovered(seed):
    """85% of leads never convert (no loss is recorded); the converters' median is 40 days. The cure model's
    probability of ever converting and the converters' median hold the truth in their intervals, and the
    non-cure fit (everyone converts if one waits) loses by AIC."""
    days, converted = cure_funnel(seed)
    fit = OutcomeFit(resolution_days=1 / 24, cure=True, seed=seed).fit(days, np.where(converted, WON, OPEN))
    result = fit.to_dict()
    assert result["outcome_model"] == "cure"
    assert result["mixture"]["aic_no_cure"] > result["mixture"]["aic"] + 10
    low, high = result["mixture"]["interval"]
    assert low <= 0.15 <= high, result["mixture"]
    low, high = result["time_to_win"]["median_interval"]
    assert low <= 40 <= high, result["time_to_win"]
    assert fit.conditional_win_probability(0.0) == pytest.approx(fit.mixture_p_)
    assert fit.conditional_win_probability(200.0) < fit.conditional_win_probability(20.0)
    assert fit.conditional_remaining_days(0.0) == pytest.approx(float(fit.won_.median()))
    assert fit.conditional_remaining_days(60.0) > 0


@pytest.mark.parametrize("family, truth", [
    ("gamma", stats.gamma(2.0, scale=15.0)), ("weibull", stats.weibull_min(1.5, scale=35.0)),
    ("lognormal", stats.lognorm(0.8, scale=30.0)), ("loglogistic", stats.fisk(2.5, scale=30.0)),
])
def test_every_family_fits_a_cure_model_drawn_from_it(family, truth):
    """A fifth of 6,000 leads convert, after times drawn from the family; each family's cure fit recovers the share
    and the converters' median (every family is a real candidate of the AIC choice, none stuck at its start)."""
    rng = np.random.default_rng(11)
    age = rng.uniform(0, 365, 6000)
    time = np.where(rng.random(6000) < 0.2, truth.rvs(6000, random_state=rng), np.inf)
    fit = OutcomeFit((family,), resolution_days=1 / 24, cure=True).fit(np.minimum(time, age), np.where(time <= age, WON, OPEN))
    assert fit.mixture_p_ == pytest.approx(0.2, abs=0.025)
    assert float(fit.won_.median()) == pytest.approx(truth.median(), rel=0.08)


def test_a_funnel_where_everyone_converts_keeps_the_non_cure_fit():
    rng = np.random.default_rng(5)
    age = rng.uniform(0, 400, 3000)
    time = 30 * np.exp(0.5 * rng.standard_normal(3000))
    fit = OutcomeFit(("lognormal",), resolution_days=1 / 24, cure=True).fit(np.minimum(time, age), np.where(time <= age, WON, OPEN))
    assert fit.model_ == "no_cure" and fit.mixture_p_ == 1.0


# ----- arrivals -----

def _created(monthly: list[float], seed: int) -> tuple[pd.Series, pd.Timestamp, pd.Timestamp]:
    """Creation times of leads whose monthly counts are Poisson around ``monthly``, scattered 10% more month to
    month (a gamma factor), from January 2025."""
    rng = np.random.default_rng(seed)
    months = pd.period_range("2025-01", periods=len(monthly), freq="M")
    stamps = [month.start_time + pd.to_timedelta(rng.uniform(0, month.days_in_month, rng.poisson(mean * rng.gamma(100, 0.01))), unit="D")
              for month, mean in zip(months, monthly)]
    return pd.Series(np.sort(np.concatenate(stamps))), months[0].start_time, months[-1].end_time.normalize()


def test_times_all_within_the_first_resolution_step_are_bounded_not_invented():
    """Every row passing at once (an MQL at the lead's creation) bounds the time by the resolution and says no
    more: the intervals of its median and P90 are [0, resolution], not the nonsense of an unidentified fit."""
    rng = np.random.default_rng(0)
    outcome = np.where(rng.random(2000) < 0.5, WON, 2)
    with np.errstate(all="raise"):
        fit = OutcomeFit(resolution_days=1 / 24).fit(np.zeros(2000), outcome)
        times = fit.to_dict()["time_to_win"]
    assert times["median_interval"] == times["p90_interval"] == [0.0, 1 / 24]
    assert times["median"] < 1 / 24


def test_arrivals_extrapolate_growth_only_where_the_data_hold_it():
    """Over 20 seeds: a six-month ramp-up then six level months is read as growth that stopped (not extrapolated)
    and levelled where it is; growth of 3% a month over 18 months keeps its trend; a level with scatter is rarely
    read as a trend."""
    ramp = [100 * 1.15 ** min(month, 6) for month in range(12)]
    fits = [ArrivalModel().fit(*_created(ramp, seed)) for seed in range(20)]
    assert sum(fit.growth_ not in ("none", "trend") for fit in fits) >= 16
    volumes = [fit.monthly_volume(pd.Period("2026-01", "M"))[0] for fit in fits]
    assert abs(np.mean(volumes) / (100 * 1.15**6) - 1) < 0.1, np.mean(volumes)
    fits = [ArrivalModel().fit(*_created([1000 * 1.03**month for month in range(18)], seed)) for seed in range(20)]
    assert sum(fit.growth_ == "trend" for fit in fits) >= 16
    assert abs(np.mean([fit.trend_ for fit in fits]) - 0.03) < 0.01
    fits = [ArrivalModel().fit(*_created([800] * 12, seed)) for seed in range(20)]
    assert sum(fit.growth_ == "trend" for fit in fits) <= 4


# ----- numbers as exports write them -----

SMALL = {"smb": Segment(400, 0.3, 30, 15), "enterprise": Segment(120, 0.2, 90, 40)}


def _calibrate(frame: pd.DataFrame, folder, mapping_extra: str = "") -> Calibration:
    path = folder / "export.csv"
    frame.to_csv(path, index=False)
    mapping = folder / "mapping.yaml"
    _, base = load_mapping("maven_sales_pipeline")
    mapping.write_text(json.dumps({**base.model_dump(exclude_defaults=True), **json.loads(mapping_extra or "{}")}) + "\n")
    source, model = load_mapping(mapping)
    return Calibration().fit(audit(read_export(path, model, source), model))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    frame = export(7, SMALL)
    return frame, _calibrate(frame, tmp_path_factory.mktemp("clean")).to_dict()


def _formatted(values: pd.Series, style: str) -> pd.Series:
    whole, cents = np.divmod(np.round(values.to_numpy() * 100).astype(np.int64), 100)
    grouped = [f"{w:,}" for w in whole]
    if style == "us":
        return pd.Series([f"${g}.{c:02d}" for g, c in zip(grouped, cents)])
    if style == "eu":
        return pd.Series([f"{g.replace(',', '.')},{c:02d} €" for g, c in zip(grouped, cents)])
    return pd.Series([g.replace(",", " ") for g in grouped])  # whole amounts, space-grouped


@pytest.mark.parametrize("style, number_format", [
    ("us", '{"number_format": {"thousands": ",", "decimal": "."}}'),
    ("eu", '{"number_format": {"thousands": ".", "decimal": ","}}'),
    ("space", '{"number_format": {"thousands": " "}}'),
])
def test_formatted_amounts_give_the_same_fit_as_the_clean_export(clean, tmp_path, style, number_format):
    frame, expected = clean
    formatted = frame.copy()
    if style == "space":
        frame = frame.assign(close_value=np.round(frame["close_value"]))
        expected = _calibrate(frame, _fresh(tmp_path, "whole")).to_dict()
        formatted = frame.copy()
    formatted["close_value"] = _formatted(frame["close_value"], style)
    fitted = _calibrate(formatted, _fresh(tmp_path, "formatted"), number_format).to_dict()
    assert fitted["audit"]["quarantined"] == 0 and fitted["audit"]["field_issues"] == {}
    assert fitted["scenario"] == expected["scenario"]
    assert fitted["deal_sizes"] == expected["deal_sizes"]
    unformatted = _calibrate(formatted, _fresh(tmp_path, "unformatted")).to_dict()
    assert unformatted["audit"]["field_issues"]["amount"]["bad_amount"] > 0
    assert unformatted["scenario"]["funnel"] == expected["scenario"]["funnel"]  # the rate and times need no amount


def _fresh(folder, name):
    path = folder / name
    path.mkdir(exist_ok=True)
    return path


def test_a_bad_amount_leaves_the_row_out_of_the_deal_size_fit_only(clean, tmp_path):
    """Garbled amounts on lost and open deals change nothing; on won deals, only the deal-size fit loses them,
    and the audit says per fit how many rows it used and could not."""
    frame, expected = clean
    garbled = frame.astype({"close_value": object})
    won = garbled["deal_stage"].eq("Won")
    target = (~won) | (won & (np.arange(len(garbled)) % 10 == 0))
    garbled.loc[target, "close_value"] = "n/a"
    fitted = _calibrate(garbled, tmp_path).to_dict()
    assert fitted["audit"]["quarantined"] == 0
    assert fitted["spans"]["opportunity→won"]["pooled"] == expected["spans"]["opportunity→won"]["pooled"]
    assert fitted["scenario"]["funnel"] == expected["scenario"]["funnel"]
    sizes = fitted["audit"]["fits"]["deal sizes"]
    bad_won = int((won & target).sum())
    assert sizes == {"entered": int(won.sum()), "used": int(won.sum()) - bad_won, "not_usable": bad_won, "why": {"bad_amount": bad_won}}
    assert fitted["audit"]["field_issues"]["amount"]["bad_amount"] == int(target.sum())
    assert fitted["audit"]["fits"]["outcomes opportunity→won"]["not_usable"] == 0


# ----- snapshot, parameter draws -----

def test_parameter_draws_are_scenario_overrides_and_reproducible(clean, tmp_path):
    frame, calibration = clean
    draws = calibration["parameter_draws"]
    assert len(draws) == 200
    assert draws == _calibrate(frame, tmp_path).to_dict()["parameter_draws"]
    _, base = read_scenario_data("baseline")
    merged = apply_calibration(base, calibration)
    keys = set(draws[0])
    assert {"funnel.stages.0.conversion.smb", "funnel.stages.0.conversion.enterprise",
            "funnel.stages.0.duration_days.smb", "funnel.stages.0.lost_duration_days.enterprise"} <= keys
    assert any(key.startswith("lead_sources.") and key.endswith(".monthly_volume") for key in keys)
    for draw in draws[:3]:
        validate_scenario(apply_overrides(merged, [f"{k}={json.dumps(v)}" for k, v in draw.items()]), "drawn")
    rates = np.array([d["funnel.stages.0.conversion.smb"] for d in draws])
    interval = calibration["spans"]["opportunity→won"]["rate"]["by_group"]["smb"]["interval"]
    assert interval[0] < np.median(rates) < interval[1] and rates.std() > 0


def test_snapshot_lists_open_deals_with_their_age_and_reps_with_tenure(tmp_path):
    frame = export(2, SMALL)
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    source, mapping = load_mapping("maven_sales_pipeline")
    checked = audit(read_export(path, mapping, source), mapping)
    fitted = Calibration().fit(checked)
    roster = pd.DataFrame({"rep": ["a", "b", "c"], "role": ["ae", "ae", "sdr"],
                           "start_date": pd.to_datetime(["2027-01-01", "2020-05-01", "2027-08-01"]),
                           "end_date": pd.to_datetime([None, "2027-03-01", None])})
    snapshot = fitted.snapshot(checked.used, roster)
    deals_open = snapshot[snapshot["kind"] == "opportunity"]
    is_open = checked.used["outcome"].eq("open")
    assert len(deals_open) == int(is_open.sum()) and set(deals_open["stage"]) == {"close"}
    expected_age = (checked.known_until - checked.used.loc[is_open, "created_at"]) / pd.Timedelta(days=1)
    assert np.allclose(np.sort(deals_open["age_days"].astype(float)), np.sort(expected_age.round(3)))
    reps = snapshot[snapshot["kind"] == "rep"]
    assert list(reps["id"]) == ["a"]  # b left before, c starts after the as-of date
    tenure = (checked.known_until - pd.Timestamp("2027-01-01")) / pd.Timedelta(days=1) / 30.4375
    assert reps["tenure_months"].iloc[0] == pytest.approx(tenure, abs=1e-3) and 5.5 < tenure < 6


# ----- audit messages -----

def test_header_holding_the_separator_is_one_message(tmp_path):
    export_file = tmp_path / "export.csv"
    export_file.write_text("opportunity_id;sales_agent;product;account;deal_stage;engage_date;close_date;close_value\n"
                           "A1;Ann;GTX;Acme;Won;2017-01-02;2017-02-03;550\n")
    result = CliRunner().invoke(app, ["calibrate", str(export_file), "-m", "maven_sales_pipeline", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "looks `;`-separated: set `file.separator`" in lines[0], result.output
    source, mapping = load_mapping("maven_sales_pipeline")
    with pytest.raises(CalibrationError, match="separated"):
        read_export(export_file, mapping, source)


def test_plural_forms():
    assert plural(1, "day") == "1 day" and plural(2, "day") == "2 days" and plural(0, "row") == "0 rows"
    assert plural(1, "loss", "losses") == "1 loss" and plural(1204, "row") == "1,204 rows"


def test_loglogistic_scenario_distribution_is_scipys_fisk():
    """A log-logistic time fitted by calibration is drawn in the scenario as scipy's ``fisk``."""
    from scipy import stats

    from scenarios.distributions import Loglogistic

    u = np.linspace(0.01, 0.99, 25)
    for shape in (0.8, 2.5):
        distribution = Loglogistic(dist="loglogistic", shape=shape, scale=30)
        assert np.allclose(distribution.ppf(u), stats.fisk(shape, scale=30).ppf(u))
    assert Loglogistic(dist="loglogistic", shape=2.5, scale=30).expected() == pytest.approx(stats.fisk(2.5, scale=30).mean())
    assert Loglogistic(dist="loglogistic", shape=0.8, scale=30).expected() == float("inf")
