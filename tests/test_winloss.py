"""Win/loss and performance: planted odds ratios recovered, nulls rarely flagged, leakage found, unlucky reps told
from weak ones, bad input refused in one line, real exports end to end with their shipped mappings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from calibration.attributes import attribute_column
from calibration.mapping import Attribute
from calibration.performance import beta_binomial_prior, deal_table, funnel_limits, performance
from calibration.winloss import analyse
from experiments.cli import app
from tests.planted_export import MAPPING, NULL_ATTRIBUTES, PLANTED, planted_export

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ATTRIBUTES = ("region", "product", "channel", "industry", "colour", "employees", "days_in_stage")
#: Seeds in the test; benchmarks/winloss_power.py runs 100.
SEEDS = 30
OUTCOMES = {"Won": "won", "Lost": "lost", "Open": "open"}


def analyse_planted(seed: int, n: int = 1500):
    """The analysis of a planted export, from its cells (no file)."""
    frame = planted_export(seed, n)
    columns = [attribute_column(name, Attribute(column=name), frame[name]) for name in ATTRIBUTES]
    created = pd.to_datetime(frame["created"])
    cycle = (pd.to_datetime(frame["closed"].replace("", None)) - created).dt.days
    return analyse(columns, frame["status"].map(OUTCOMES), cycle, created)


@pytest.fixture(scope="module")
def planted_runs():
    return [analyse_planted(seed) for seed in range(SEEDS)]


def test_planted_odds_ratios_inside_their_intervals_in_at_least_90_percent_of_seeds(planted_runs):
    for (attribute, level), ratio in PLANTED.items():
        covered = []
        for result in planted_runs:
            row = result.levels[(result.levels["attribute"] == attribute) & (result.levels["level"] == level)].iloc[0]
            covered.append(row["or_low"] <= ratio <= row["or_high"])
        assert np.mean(covered) >= 0.9, (attribute, level, np.mean(covered))


def test_null_attributes_flagged_after_adjustment_in_at_most_10_percent_and_planted_ones_found(planted_runs):
    flagged, found = [], []
    for result in planted_runs:
        by_name = {info["attribute"]: info for info in result.attributes}
        flagged += [by_name[name]["significant"] for name in NULL_ATTRIBUTES]
        found += [by_name[name]["significant"] for name in ("product", "channel")]
    assert np.mean(flagged) <= 0.10
    assert np.mean(found) >= 0.9  # the model has power, so the null rate above is not trivially met


def test_planted_leakage_flagged_and_kept_out_of_the_model(planted_runs):
    for result in planted_runs:
        info = next(i for i in result.attributes if i["attribute"] == "days_in_stage")
        assert info["status"] == "leakage" and info["tracks_duration"]
        assert "days_in_stage" not in result.model["attributes"]
        assert result.levels[result.levels["attribute"] == "days_in_stage"]["leakage"].all()
    assert not any(i["leakage"] for r in planted_runs for i in r.attributes if i["attribute"] != "days_in_stage")


def test_declared_recording_overrides_the_data():
    frame = planted_export(0, 1500)
    created = pd.to_datetime(frame["created"])
    cycle = (pd.to_datetime(frame["closed"].replace("", None)) - created).dt.days
    declared = [attribute_column("days_in_stage", Attribute(column="days_in_stage", recorded="open"), frame["days_in_stage"]),
                attribute_column("colour", Attribute(column="colour", recorded="close"), frame["colour"])]
    result = analyse(declared, frame["status"].map(OUTCOMES), cycle, created)
    status = {info["attribute"]: info["status"] for info in result.attributes}
    assert status == {"days_in_stage": "driver", "colour": "leakage"}


def test_rare_levels_pooled_collinear_and_separating_attributes_named():
    frame = planted_export(1, 1500)
    outcome = frame["status"].map(OUTCOMES)
    rare = frame["industry"].where(np.arange(len(frame)) >= 20, "tiny")  # 20 deals: pooled into other
    copy = frame["product"].map({"A": "x", "B": "y", "C": "z"})  # the product under other names: collinear
    separating = pd.Series(np.where(outcome.eq("won"), "signed", "unsigned"))  # a perfect predictor
    columns = [attribute_column(n, Attribute(column=n), cells) for n, cells in
               (("product", frame["product"]), ("industry", rare), ("product copy", copy), ("contract", separating))]
    created = pd.to_datetime(frame["created"])
    result = analyse(columns, outcome, pd.Series(np.nan, index=frame.index), created)
    by_name = {info["attribute"]: info for info in result.attributes}
    assert by_name["industry"]["pooled_levels"] == 1
    assert set(result.levels[result.levels["level"] == "tiny"]["model_level"]) == {"other"}
    assert by_name["product copy"]["status"] == "collinear" and "product" in by_name["product copy"]["reason"]
    assert by_name["contract"]["status"] == "separating" and "'signed'" in by_name["contract"]["reason"]
    assert result.model["attributes"] == ["product", "industry"]


def test_beta_binomial_prior_recovers_a_known_spread():
    rng = np.random.default_rng(5)
    mean, strength = 0.3, 50.0
    rates = rng.beta(mean * strength, (1 - mean) * strength, 400)
    n = np.full(400, 100)
    fitted_mean, fitted_strength = beta_binomial_prior(rng.binomial(n, rates), n)
    assert fitted_mean == pytest.approx(mean, abs=0.01)
    assert fitted_strength == pytest.approx(strength, rel=0.35)
    _, no_spread = beta_binomial_prior(rng.binomial(n, 0.3), n)  # units differ by noise alone
    assert no_spread > 5 * 100  # each unit of 100 deals is pulled more than 5/6 of the way to the organisation


def test_funnel_limits_hold_their_coverage():
    rng = np.random.default_rng(2)
    for n in (8, 40, 300):
        low, high = funnel_limits(np.array([n]), 0.45, 0.95)
        rates = rng.binomial(n, 0.45, 20_000) / n
        assert ((rates >= low[0]) & (rates <= high[0])).mean() >= 0.95


def test_unlucky_rep_inside_funnel_limits_weak_rep_outside():
    frame = planted_export(3, weak_rep=True)
    used = pd.DataFrame({
        "owner": frame["rep"], "territory": frame["region"], "outcome": frame["status"].map(OUTCOMES),
        "amount": frame["amount"].astype(float), "created_at": pd.to_datetime(frame["created"]),
        "closed_at": pd.to_datetime(frame["closed"].replace("", None)), "first_response_at": pd.NaT})
    cycle = (used["closed_at"] - used["created_at"]).dt.days
    table, _ = performance(deal_table(used, cycle), {"owner": "owner", "territory": "territory"})
    whole = table[(table["kind"] == "owner") & (table["period"] == "all")].set_index("unit")
    unlucky, weak = whole.loc["rep_20"], whole.loc["rep_01"]
    assert unlucky["deals"] == 8 and unlucky["won_rate"] == 0.25 < unlucky["org_rate"] - 0.15
    assert unlucky["flag"] == "within" and unlucky["limit998_low"] < unlucky["won_rate"]
    assert unlucky["won_rate"] < unlucky["shrunk_rate"] < unlucky["org_rate"]  # pulled towards the organisation
    assert weak["deals"] > 250 and weak["flag"] == "below" and weak["won_rate"] < weak["limit998_low"]
    assert set(whole.drop(index=["rep_01"])["flag"]) <= {"within", "low", "high"}


def test_mean_cycle_time_funnel_limits_and_shrinkage():
    rng = np.random.default_rng(8)
    sizes = {f"rep_{i:02d}": 50 for i in range(20)} | {"few": 5, "slow": 400}
    owner = np.repeat(list(sizes), list(sizes.values()))
    cycle = rng.normal(40, 10, len(owner)) + 5 * (owner == "slow")  # the slow rep's deals take 5 days longer
    deals = pd.DataFrame({"owner": owner, "territory": "all", "outcome": rng.choice(["won", "lost"], len(owner)),
                          "amount": 1.0, "cycle_days": cycle, "response_hours": np.nan, "closed_at": pd.NaT})
    table, _ = performance(deals, {"owner": "owner"})
    rows = table.set_index("unit")
    assert rows.loc["slow", "cycle_days_flag"] == "above"  # 5 days on 400 deals: 10 standard errors
    others = rows.drop(index="slow")["cycle_days_flag"]
    assert "above" not in set(others) and (others == "within").mean() >= 0.8  # limits around a mean the slow rep lifts
    few = rows.loc["few"]
    assert abs(few["cycle_days_shrunk"] - few["cycle_days_org"]) < abs(few["cycle_days_mean"] - few["cycle_days_org"])
    assert rows["response_hours_flag"].isna().all()  # not in the export: no figure, no flag


def test_territory_that_slipped_last_quarter_is_found():
    frame = planted_export(4, n=4000)
    frame = frame[~frame["closed"].ge("2026")].reset_index(drop=True)  # the export is taken at the end of 2025
    closed = pd.to_datetime(frame["closed"].replace("", None))
    slip = (frame["region"] == "west") & (closed >= "2025-10-01") & frame["status"].eq("Won")
    frame.loc[slip[slip].index[::2], "status"] = "Lost"  # half of west's wins in the last quarter become losses
    used = pd.DataFrame({"owner": frame["rep"], "territory": frame["region"], "outcome": frame["status"].map(OUTCOMES),
                         "amount": 0.0, "created_at": pd.to_datetime(frame["created"]), "closed_at": closed,
                         "first_response_at": pd.NaT})
    _, trends = performance(deal_table(used, (closed - used["created_at"]).dt.days), {"territory": "territory"})
    verdict = trends.set_index("unit")["trend"]
    assert verdict["west"] == "slipped" and set(verdict.drop(index="west")) == {"steady"}


@pytest.fixture()
def planted_files(tmp_path):
    planted_export(3, weak_rep=True).to_csv(tmp_path / "planted.csv", index=False)
    (tmp_path / "planted.yaml").write_text(MAPPING, encoding="utf-8")
    return tmp_path


def test_command_writes_drivers_performance_json_and_report(planted_files):
    out = planted_files / "out"
    result = runner.invoke(app, ["winloss", str(planted_files / "planted.csv"), "-m", str(planted_files / "planted.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    drivers = pd.read_csv(out / "drivers.csv")
    assert {"attribute", "level", "won_rate", "won_rate_low", "won_rate_high", "odds_ratio", "or_low", "or_high",
            "p_adjusted", "leakage"} <= set(drivers.columns)
    performance_csv = pd.read_csv(out / "performance.csv")
    assert {"owner", "territory"} == set(performance_csv["kind"])
    summary = json.loads((out / "winloss.json").read_text())
    assert [item["attribute"] for item in summary["leakage"]] == ["days_in_stage"]
    assert summary["holdout"]["done"] and 0.5 < summary["holdout"]["auc"] < 1
    lost = pd.read_csv(out / "lost_reasons.csv")
    assert lost[lost["by"] == "all"]["lost"].sum() == summary["closed"] - summary["won"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "days_in_stage" in html


def test_a_second_run_leaves_no_stale_file(planted_files):
    out = planted_files / "out"
    args = ["winloss", str(planted_files / "planted.csv"), "--out", str(out), "-m"]
    assert runner.invoke(app, [*args, str(planted_files / "planted.yaml")]).exit_code == 0
    assert (out / "lost_reasons.csv").is_file() and (out / "plots" / "lost_reasons.png").is_file()
    result = runner.invoke(app, [*args, _mapping_with(planted_files, ("lost_reason: lost_reason", ""))])
    assert result.exit_code == 0, result.output
    assert not (out / "lost_reasons.csv").exists() and not (out / "plots" / "lost_reasons.png").exists()
    assert json.loads((out / "winloss.json").read_text())["lost_reasons"] is None


def _mapping_with(planted_files: Path, replace: tuple[str, str]) -> str:
    path = planted_files / "changed.yaml"
    path.write_text(MAPPING.replace(*replace), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("change, message", [
    (("employees: {column: employees}", "employees: {column: headcount}"), "attributes.employees.column: names column 'headcount'"),
    (("Lost: lost", "Lost: won"), "closed deals are won: a win/loss analysis needs both"),
    (("{Won: won, Lost: lost, Open: open}", "{Won: open, Lost: open, Open: open}"), "no closed deals among"),
])
def test_bad_input_is_one_line_error(planted_files, change, message):
    result = runner.invoke(app, ["winloss", str(planted_files / "planted.csv"), "-m", _mapping_with(planted_files, change),
                                 "--out", str(planted_files / "out")])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_attribute_with_one_level_is_a_stated_skip(planted_files):
    frame = pd.read_csv(planted_files / "planted.csv", keep_default_na=False)
    frame["colour"] = "red"
    frame.to_csv(planted_files / "planted.csv", index=False)
    out = planted_files / "out"
    result = runner.invoke(app, ["winloss", str(planted_files / "planted.csv"), "-m", str(planted_files / "planted.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "colour: one level ('red') in every used row" in " ".join(result.output.split())
    summary = json.loads((out / "winloss.json").read_text())
    assert next(a for a in summary["attributes"] if a["attribute"] == "colour")["status"] == "skipped"


def test_calibrate_segment_by_an_attribute(planted_files):
    out = planted_files / "cal"
    result = runner.invoke(app, ["calibrate", str(planted_files / "planted.csv"), "-m", str(planted_files / "planted.yaml"),
                                 "--segment-by", "product", "--out", str(out)])
    assert result.exit_code == 0, result.output
    calibration = json.loads((out / "calibration.json").read_text())
    assert set(calibration["scenario"]["segments"]) == {"a", "b", "c"}
    close = calibration["scenario"]["funnel"]["stages"][-1]["conversion"]
    assert close["b"] > close["a"] > close["c"]  # the planted odds ratios 2 and 0.5 against product A
    result = runner.invoke(app, ["calibrate", str(planted_files / "planted.csv"), "-m", str(planted_files / "planted.yaml"),
                                 "--segment-by", "size", "--out", str(out)])
    assert result.exit_code == 2 and "'size' is not an attribute of the mapping" in result.output


real_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data sets not found at {DATA} (they live beside the checkout)")


@real_data
def test_ibm_end_to_end_leakage_declared_and_found(tmp_path):
    out = tmp_path / "ibm"
    result = runner.invoke(app, ["winloss", str(DATA / "ibm-sales-win-loss/WA_Fn-UseC_-Sales-Win-Loss.csv"), "-m", "ibm_sales_win_loss", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "winloss.json").read_text())
    by_name = {a["attribute"]: a for a in summary["attributes"]}
    assert {item["attribute"] for item in summary["leakage"]} == {"days in stage", "stage changes"}
    assert by_name["stage changes"]["tracks_duration"]  # the data agree with the declaration
    drivers = pd.read_csv(out / "drivers.csv")
    route = drivers[drivers["attribute"] == "Route To Market"].set_index("level")["won_rate"]
    assert route.idxmax() == "Reseller" and route.idxmin() == "Telecoverage"  # README: 27.6% … 6.5%
    assert summary["holdout"]["auc"] > 0.7


@real_data
def test_maven_end_to_end_offices_agents_and_collinear_manager(tmp_path):
    out = tmp_path / "maven"
    result = runner.invoke(app, ["winloss", str(DATA / "maven-crm-sales-opportunities/sales_pipeline.csv"), "-m", "maven_sales_pipeline",
                                 "--territory-by", "office", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "winloss.json").read_text())
    assert summary["closed"] == 6711 and summary["won"] == 4238
    by_name = {a["attribute"]: a for a in summary["attributes"]}
    assert by_name["manager"]["status"] == "collinear" and "office" in by_name["manager"]["reason"]  # each manager in one office
    offices = pd.read_csv(out / "drivers.csv").query("attribute == 'office'").set_index("level")["won_rate"]
    assert offices.round(3).to_dict() == {"Central": 0.626, "East": 0.630, "West": 0.639}  # README
    assert summary["performance"]["prior_strength"]["owner"] > 500  # agents differ little beyond noise (README: sd 3.7 pp)


def test_a_store_that_cannot_be_used_is_refused_before_the_work(planted_files, tmp_path):
    """As for every tracked command: one line naming the store, exit 2, nothing written, no traceback."""
    out = tmp_path / "out"
    result = runner.invoke(app, ["winloss", str(planted_files / "planted.csv"), "-m", str(planted_files / "planted.yaml"),
                                 "--out", str(out), "--tracking-uri", "sqlite:////nonexistent/folder/mlflow.db"])
    assert result.exit_code == 2 and not out.exists(), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "tracking" in result.output and "Traceback" not in result.output
