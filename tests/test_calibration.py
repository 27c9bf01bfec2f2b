"""Calibration against known truth: interval coverage, censored cycle times, the generator's parameters,
the fragment in the scenario format, and bad input."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from calibration import Calibration, CalibrationError, apply_calibration, audit, load_mapping, read_export, read_roster
from calibration.estimators import DurationFit, PooledRates
from experiments.forecast import run_backtest
from experiments.cli import app
from experiments.crm_generator import generate_crm, history_scenario
from scenarios import load_scenario, read_scenario_data, validate_scenario

runner = CliRunner()


TRIALS = np.array([25, 150, 800, 60])


def _coverage(draw_truth, data_sets: int = 400, seed: int = 11) -> np.ndarray:
    """Share of data sets whose fitted 95% interval holds the true rate, per segment."""
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(data_sets):
        truth = draw_truth(rng)
        fit = PooledRates.from_counts(pd.Series(rng.binomial(TRIALS, truth)), pd.Series(TRIALS), n_draws=2000)
        hits.append(((fit.by_group_["lower"] <= truth) & (truth <= fit.by_group_["upper"])).to_numpy())
    return np.mean(hits, axis=0)


def test_rate_intervals_cover_the_truth_at_about_the_nominal_rate():
    """Segments' true rates drawn afresh for each of 400 data sets (as the shrinkage prior assumes): the 95%
    intervals hold the truth about 95% of the time over all segments, small and large."""
    coverage = _coverage(lambda rng: rng.beta(6, 14, len(TRIALS)))
    assert 0.92 <= coverage.mean() <= 0.975, coverage


def test_well_measured_segments_keep_nominal_coverage_at_fixed_rates():
    """Shrinkage costs coverage only where a segment has little data: at fixed, spread-out rates, segments with
    150 and 800 trials stay near 95% (the 25-trial one, far from the pooled rate, is pulled toward it)."""
    coverage = _coverage(lambda rng: np.array([0.12, 0.3, 0.35, 0.6]))
    assert coverage[1] >= 0.92 and coverage[2] >= 0.92, coverage


def test_small_groups_shrink_toward_the_others_and_large_ones_keep_their_own_rate():
    """Pooling strength is estimated: a 12-trial group is pulled toward the others, a 5,000-trial one keeps its
    own rate to within 0.005, and the between-group spread is reported."""
    fit = PooledRates.from_counts(pd.Series([1, 150, 400, 1500]), pd.Series([12, 1000, 1000, 5000]))
    small, large = fit.by_group_.iloc[0], fit.by_group_.iloc[3]
    others = fit.by_group_["observed"].iloc[1:].mean()
    assert abs(small["rate"] - others) < abs(small["observed"] - others)
    assert small["shrinkage"] > 0.3 and large["shrinkage"] < 0.05
    assert abs(large["rate"] - large["observed"]) < 0.005
    assert fit.spread_["tau_interval"][0] < fit.spread_["tau_median"] < fit.spread_["tau_interval"][1]


def _censored_sample(seed: int, n: int = 6000):
    """Deals opened uniformly over 90 days, cycle ~ gamma(2, 15) (mean 30 d, median 25.2 d), observed until day
    90: a third of the deals (mean cycle / window) are still open."""
    rng = np.random.default_rng(seed)
    opened = rng.uniform(0, 90, n)
    cycle = rng.gamma(2.0, 15.0, n)
    as_of = 90
    observed = opened + cycle <= as_of
    keep = opened <= as_of
    return np.where(observed, cycle, as_of - opened)[keep], observed[keep]


def test_median_cycle_within_5_percent_with_a_third_open_and_dropping_open_deals_fails():
    from scipy import stats

    true_median = stats.gamma(2.0, scale=15.0).median()
    durations, observed = _censored_sample(5)
    open_share = 1 - observed.mean()
    assert 0.28 <= open_share <= 0.4, open_share
    fit = DurationFit().fit(durations, observed)
    assert abs(fit.median_ / true_median - 1) < 0.05
    assert abs(fit.km_median_ / true_median - 1) < 0.05
    assert fit.family_ == "gamma"
    dropped = DurationFit().fit(durations[observed], observed[observed])
    assert abs(dropped.median_ / true_median - 1) > 0.05


#: One closing stage with a gamma(2, 15) duration for every segment: opportunity → close (won or lost) is exactly
#: that draw in the engine, so the truth is the distribution's median (25.2 d). Every lead is qualified and the
#: teams are five times the baseline's, so that the three months before the as-of date hold about 3,500
#: opportunities (at the baseline's ~450 the fitted median's error is about 5% by itself).
CYCLE_SHAPE, CYCLE_SCALE = 2.0, 15.0
ONE_STAGE = [
    "horizon_months=4",
    f"funnel.stages=[{{name: close, conversion: {{default: 0.6}}, duration_days: {{default: {{dist: gamma, shape: {CYCLE_SHAPE}, scale: {CYCLE_SCALE}}}}}}}]",
    "funnel.mql_rate={default: 1.0}", "funnel.sql_rate={default: 1.0}", "funnel.opportunity_rate={default: 1.0}",
    "funnel.response_decay=null",
    "roles.sdr.headcount={north: 30, south: 25, east: 25, west: 20}",
    "roles.ae.headcount={north: 30, south: 25, east: 25, west: 20}",
]


def test_generated_export_median_cycle_within_5_percent_with_a_third_open(tmp_path):
    """A generated export calibrated as of 2027-03-22, a month before its end (closes after the as-of date are
    forgotten, so those deals are open): about a third of the opportunities are open, and the fitted median of
    opportunity → close lies within 5% of the gamma's median and of the median of the same deals' full durations
    in the engine's log, for the time to win and the time to lose alike (the engine draws both from the same gamma
    here), and the won rate's interval holds the stage's 0.6. The median of the closed deals alone, or a fit to
    them alone, is about 20% short."""
    from scipy import stats

    from engine import run_replication

    scenario = load_scenario("baseline", ONE_STAGE)
    seed, as_of = 1, date(2027, 3, 22)
    export, _ = generate_crm(scenario, seed=seed)
    export.to_csv(tmp_path / "crm.csv", index=False)
    source, mapping = load_mapping("generated")
    checked = audit(read_export(tmp_path / "crm.csv", mapping, source), mapping, as_of=as_of)
    fitted = Calibration().fit(checked)

    used = checked.used
    opportunities = used[used["opportunity_at"].notna()]
    is_open = opportunities["outcome"].eq("open")
    assert 0.25 <= is_open.mean() <= 0.45, is_open.mean()
    assert len(opportunities) > 3000

    truth = stats.gamma(CYCLE_SHAPE, scale=CYCLE_SCALE).median()
    log = run_replication(history_scenario(scenario), 0, seed, keep_log=True).lead_log  # the generator's leads
    rows = opportunities["id"].str[1:].astype(int).to_numpy() - 1
    full = (log["close_day"] - log["opportunity_day"]).to_numpy()[rows]
    assert not np.isnan(full).any()
    sample_truth = float(np.median(full))
    assert abs(sample_truth / truth - 1) < 0.05

    pooled = fitted.spans_["opportunity→won"]["pooled"]
    assert pooled["open"] == int(is_open.sum())
    for estimate in (pooled["time_to_win"]["median"], pooled["time_to_lose"]["median"]):
        assert abs(estimate / truth - 1) < 0.05, (estimate, truth)
        assert abs(estimate / sample_truth - 1) < 0.05, (estimate, sample_truth)
    assert pooled["interval"][0] <= 0.6 <= pooled["interval"][1], pooled["interval"]

    closed = opportunities[~is_open]
    closed_days = ((closed["closed_at"] - closed["opportunity_at"]) / pd.Timedelta(days=1)).to_numpy()
    naive = float(np.median(closed_days))
    dropped = DurationFit().fit(closed_days, np.ones(len(closed_days), dtype=bool))
    for estimate in (naive, dropped.median_):
        assert abs(estimate / truth - 1) > 0.05, (estimate, truth)
        assert abs(estimate / sample_truth - 1) > 0.05, (estimate, sample_truth)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A six-month export of the baseline, written to disk as a user would get it from generate-crm."""
    folder = tmp_path_factory.mktemp("generated")
    scenario = load_scenario("baseline", ["horizon_months=6"])
    export, roster = generate_crm(scenario, seed=4)
    export.to_csv(folder / "crm.csv", index=False)
    roster.to_csv(folder / "roster.csv", index=False)
    source, mapping = load_mapping("generated")
    checked = audit(read_export(folder / "crm.csv", mapping, source), mapping)
    return scenario, folder, mapping, checked, Calibration().fit(checked, read_roster(folder / "roster.csv", mapping))


def test_generated_export_recovers_the_scenario(generated):
    scenario, _, _, checked, fitted = generated
    assert checked.summary["quarantined"] == 0
    funnel = scenario.funnel
    decay = fitted.response_decay_
    assert decay["significant"]
    lo, hi = decay["half_life_interval"]
    assert lo <= funnel.response_decay.half_life_hours <= hi
    lo, hi = decay["floor_interval"]
    assert lo <= funnel.response_decay.floor <= hi
    hits = []
    opportunity = fitted.spans_["sql→opportunity"]["rate"]["by_group"]
    immediate = decay["sql_rate_at_immediate_response"]
    for segment in scenario.segments:
        hits.append(opportunity[segment]["interval"][0] <= funnel.opportunity_rate[segment] <= opportunity[segment]["interval"][1])
        hits.append(immediate[segment]["interval"][0] <= funnel.sql_rate[segment] <= immediate[segment]["interval"][1])
    assert sum(hits) >= len(hits) - 1, hits


def test_generated_fragment_merges_into_a_scenario_that_runs(generated):
    from engine import run_replication

    scenario, _, _, _, fitted = generated
    calibration = json.loads(json.dumps(fitted.to_dict()))
    _, base = read_scenario_data("baseline")
    merged = validate_scenario(apply_calibration(base, calibration), "calibrated baseline")
    assert set(merged.segments) == set(scenario.segments)
    assert merged.funnel.response_decay is not None
    result = run_replication(merged.model_copy(update={"horizon_months": 2}), 0, 1)
    assert result.totals["leads"] > 0


def test_generated_roster_recovers_the_attrition_hazard_and_ramp(generated):
    """Veterans' start dates lie years before the export, when no departure was recorded: exposure counts only from
    the first day of the data, so the fitted monthly hazard's interval holds the scenario's (SDR 0.03, AE 0.02)."""
    scenario, _, _, _, fitted = generated
    for role in ("sdr", "ae"):
        attrition = fitted.roster_[role]["attrition"]
        truth = scenario.roles[role].attrition_hazard[0]
        assert attrition["interval"][0] <= truth <= attrition["interval"][1], (role, attrition)
        assert attrition["window"] == ["2027-01-01", "2027-07-01"]
        assert 6 * 15 <= attrition["rep_months"] <= 6 * 25  # about 20 reps over 6 months, not 5 years each
        ramp = fitted.roster_[role]["ramp"]
        if ramp["fitted"]:  # few rep-months in ramp over 6 months: only a loose check
            for measured, true in zip(ramp["ramp"], scenario.roles[role].ramp):
                assert abs(measured - true) < 0.25, (role, ramp)


def test_as_of_date_includes_its_whole_day(generated):
    _, _, mapping, checked, _ = generated
    day = date(2027, 3, 15)
    created = checked.used["created_at"]
    partial = audit(_read_generated(generated), mapping, as_of=day)
    assert partial.used["created_at"].max().date() == day
    assert partial.summary["by_reason"]["after_as_of"] == int((created >= pd.Timestamp("2027-03-16")).sum())
    assert partial.known_until == pd.Timestamp("2027-03-16")
    assert partial.summary["as_of"] == "2027-03-15"


def _read_generated(generated):
    _, folder, mapping, _, _ = generated
    return read_export(folder / "crm.csv", mapping, "generated")


def test_calibrate_command_writes_files_and_rows_add_up(generated, tmp_path):
    """With an as-of ten days after the last lead, arrivals end at the last lead (noted), so the fitted trend is
    the one fitted without the gap (ten empty days counted as no leads would pull it down)."""
    _, folder, _, _, fitted = generated
    out = tmp_path / "out"
    result = runner.invoke(app, ["calibrate", str(folder / "crm.csv"), "-m", "generated", "--roster", str(folder / "roster.csv"),
                                 "--as-of", "2027-07-10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    calibration = json.loads((out / "calibration.json").read_text())
    audit_file = json.loads((out / "audit.json").read_text())
    assert audit_file["rows_in"] == audit_file["used"] + audit_file["quarantined"]
    assert len(calibration["data"]["sha256"]) == 64
    assert set(calibration["scenario"]) == {"segments", "lead_sources", "funnel", "initial_state"}
    assert calibration["scenario"]["initial_state"] == {"pipeline": "pipeline.csv"}
    pipeline = pd.read_csv(out / "pipeline.csv", keep_default_na=False)
    assert list(pipeline.columns) == ["kind", "id", "segment", "territory", "stage", "age_days", "amount", "owner", "role", "tenure_months"]
    _, _, _, checked, _ = generated
    used = checked.used
    open_opportunities = used["outcome"].eq("open") & used["opportunity_at"].notna()
    deals = pipeline[pipeline["kind"].eq("opportunity") & pipeline["stage"].eq("close")]
    assert set(deals["id"]) == set(used.loc[open_opportunities, "id"])
    assert (deals["age_days"].astype(float) > 0).all()
    assert set(pipeline["kind"]) == {"opportunity", "lead", "rep"}
    assert len(calibration["parameter_draws"]) == 200
    assert any("arrivals are measured up to 2027-06-30" in note for note in audit_file["notes"])
    for name, source in calibration["arrivals"]["lead_sources"].items():
        assert source["trend"] == pytest.approx(fitted.arrivals_[name]["trend"], abs=1e-6), name
    assert "days opportunity→win, median" in result.output
    assert max(len(line) for line in result.output.splitlines() if not line.startswith("note:")) <= 80


def test_as_of_far_after_the_data_is_refused(generated, tmp_path):
    _, folder, _, _, _ = generated
    result = runner.invoke(app, ["calibrate", str(folder / "crm.csv"), "-m", "generated", "--as-of", "2030-01-01", "--out", str(tmp_path)])
    _one_line_error(result, "--as-of", "2030-01-01 is 916 days after the latest date in the data (2027-06-30)")


def test_no_usable_rows_writes_the_audit_and_counts_reasons(generated, tmp_path):
    _, folder, _, _, _ = generated
    result = runner.invoke(app, ["calibrate", str(folder / "crm.csv"), "-m", "generated", "--since", "2028-01-01", "--out", str(tmp_path)])
    _one_line_error(result, "all 9,215 rows were quarantined (before_since 9,215)", "quarantine.csv")
    assert json.loads((tmp_path / "audit.json").read_text())["by_reason"] == {"before_since": 9215}
    assert len(pd.read_csv(tmp_path / "quarantine.csv")) == 9215
    result = runner.invoke(app, ["backtest", str(folder / "crm.csv"), "-m", "generated", "--cut", "2026-06-01", "--out", str(tmp_path)])
    _one_line_error(result, "no rows before the cut 2026-06-01", "2027-01-01")


def test_internal_errors_are_not_reported_as_input_errors(generated, tmp_path, monkeypatch):
    """Only the expected error types become one-line messages; a bug keeps its exception."""
    _, folder, _, _, _ = generated

    def broken(self, audit, roster=None):
        raise ValueError("a bug")

    monkeypatch.setattr(Calibration, "fit", broken)
    result = runner.invoke(app, ["calibrate", str(folder / "crm.csv"), "-m", "generated", "--out", str(tmp_path)])
    assert isinstance(result.exception, ValueError) and result.exit_code == 1


FLAT = "[" + ", ".join(["1"] * 12) + "]"


def test_backtest_on_generated_data_is_roughly_unbiased(tmp_path):
    """Twelve months without seasonality (which under 24 months the fit cannot see), cut after nine. About 160
    deals are won in the three compared months: Poisson noise alone is about 8% of the total, the mean of three
    replications about 5%, and the fitted rates add a few %, so |bias| < 25% is over two standard deviations,
    while rates corrected to immediate response on unlimited capacity over-forecast by 37% here."""
    scenario = load_scenario("baseline", ["horizon_months=12", f"lead_sources.inbound_smb.seasonality={FLAT}",
                                          f"lead_sources.inbound_mid_market.seasonality={FLAT}"])
    export, _ = generate_crm(scenario, seed=4)
    export.to_csv(tmp_path / "crm.csv", index=False)
    source, mapping = load_mapping("generated")
    result = run_backtest(read_export(tmp_path / "crm.csv", mapping, source), mapping, [date(2027, 10, 1)], 3, replications=3)
    won = result.monthly[result.monthly["measure"].eq("won")]
    assert won["actual"].sum() > 120
    assert abs(result.metrics["simulation"]["won"]["all"]["bias"]) < 0.25, result.metrics


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_rate_intervals_on_generated_exports_cover_the_truth(tmp_path):
    """Five two-month exports: per export, the MQL rate of the single-source segments (smb, enterprise), the
    opportunity rate and the SQL rate at immediate response of each segment, 40 intervals in all. At a true 95%
    coverage fewer than 33 hits have probability 0.07%, so a miss rate above that tolerance is a real defect.
    Short exports leave some times poorly identified: their far draws must not overflow into warnings."""
    source, mapping = load_mapping("generated")
    scenario = load_scenario("baseline", ["horizon_months=2"])
    funnel = scenario.funnel
    hits = []
    for seed in range(5):
        export, _ = generate_crm(scenario, seed=seed)
        export.to_csv(tmp_path / "crm.csv", index=False)
        fitted = Calibration().fit(audit(read_export(tmp_path / "crm.csv", mapping, source), mapping))
        mql = fitted.spans_["lead→mql"]["rate"]["by_group"]
        opportunity = fitted.spans_["sql→opportunity"]["rate"]["by_group"]
        immediate = fitted.response_decay_["sql_rate_at_immediate_response"]
        checks = [(mql[s]["interval"], funnel.mql_rate[s]) for s in ("smb", "enterprise")]
        checks += [(opportunity[s]["interval"], funnel.opportunity_rate[s]) for s in scenario.segments]
        checks += [(immediate[s]["interval"], funnel.sql_rate[s]) for s in scenario.segments]
        hits += [low <= truth <= high for (low, high), truth in checks]
    assert len(hits) == 40
    assert sum(hits) >= 33, hits


# ----- bad input -----

def _calibrate(export, mapping="maven_sales_pipeline"):
    return runner.invoke(app, ["calibrate", str(export), "-m", str(mapping), "--out", str(export.parent / "out")])


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) >= 1 and all(line.startswith("error:") for line in lines), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


HEADER = "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,close_value\n"
ROW = "A1,Ann,GTX Basic,Acme,Won,2017-01-02,2017-02-03,550\n"


@pytest.mark.parametrize("content, fragments", [
    (b"", ("empty file",)),
    (HEADER.encode(), ("header only",)),
    (HEADER.encode() + ROW.encode() + "B2,J\xf6rg,GTX Basic,Acme,Won,2017-01-02,2017-02-03,550\n".encode("latin-1"), ("row 2", "utf-8")),
    (HEADER.replace("engage_date", "engaged").encode() + ROW.encode(), ("columns.created_at", "'engage_date'")),
])
def test_bad_exports_give_one_line_errors(tmp_path, content, fragments):
    export = tmp_path / "export.csv"
    export.write_bytes(content)
    _one_line_error(_calibrate(export), *fragments)


def test_mapping_naming_a_missing_column_and_bad_mapping_keys(tmp_path):
    export = tmp_path / "export.csv"
    export.write_text(HEADER + ROW)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("columns: {id: opportunity_id, created_at: engage_date, amount: value_usd}\n")
    _one_line_error(_calibrate(export, mapping), "columns.amount", "value_usd")
    mapping.write_text("columns: {id: opportunity_id, created_at: engage_date}\ncolour: blue\n")
    _one_line_error(_calibrate(export, mapping), "colour: unknown key")
    mapping.write_text("columns: {id: opportunity_id}\n")
    _one_line_error(_calibrate(export, mapping), "columns.created_at: required")


def test_every_bad_row_is_quarantined_with_its_reason(tmp_path):
    rows = [
        "A1,Ann,GTX Basic,Acme,Won,2017-01-02,2017-02-03,550",
        "A1,Ann,GTX Basic,Acme,Won,2017-01-02,2017-02-03,550",      # exact duplicate
        "A2,Ann,GTX Basic,Acme,Won,2017-01-05,2017-01-03,550",      # closed before created
        "A3,Ann,GTX Basic,Acme,Pending,2017-01-05,,",              # label not in the map
        "A4,Ann,GTX Basic,Acme,Won,2017-13-45,2017-02-03,550",     # bad date
        "A5,Ann,GTX Basic,Acme,Won,2017-01-05,2017-02-03,",        # won without amount
        "A6,Ann,GTX Basic,Acme,Lost,2017-01-05,,0",                # lost without close date
        "A7,Ann,GTX Basic,Acme,Engaging,2017-01-05,,",             # fine, open
        "A8,Ann,GTX Basic,Acme,Won,2017-01-05,2017-02-03,abc",     # amount not a number
        "A9,Ann,GTX Basic,Acme,Lost,2017-01-05,2017-02-03,0",      # fine
    ]
    export = tmp_path / "export.csv"
    export.write_text(HEADER + "\n".join(rows) + "\n")
    source, mapping = load_mapping("maven_sales_pipeline")
    checked = audit(read_export(export, mapping, source), mapping)
    reasons = dict(zip(checked.quarantine["row"], checked.quarantine["reason"]))
    assert reasons == {2: "duplicate_row", 3: "closed_before_created", 4: "unknown_outcome", 5: "bad_date",
                       7: "closed_without_date"}
    assert checked.summary["rows_in"] == checked.summary["used"] + checked.summary["quarantined"] == 10
    assert all(checked.quarantine["detail"].str.len() > 0)
    # a bad amount leaves the row in every fit but the deal-size one
    fields = dict(zip(checked.field_quarantine["row"], checked.field_quarantine["reason"]))
    assert fields == {6: "won_without_amount", 9: "bad_amount"}
    assert checked.summary["field_issues"] == {"amount": {"won_without_amount": 1, "bad_amount": 1}}
    assert {6, 9} <= set(checked.used["row"])
    listed = checked.quarantine_rows()
    assert list(listed["scope"]) == ["row"] * 5 + ["amount"] * 2


def test_roster_errors_name_row_and_column(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("rep,role,start_date,end_date\nr1,sdr,2027-01-01,\nr2,sdr,someday,\n")
    _, mapping = load_mapping("generated")
    with pytest.raises(CalibrationError, match=r"row 2, column 'start_date'"):
        read_roster(roster, mapping)
