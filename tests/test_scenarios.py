"""Scenario files: the shipped examples, overrides, and errors that name the key path."""

from __future__ import annotations

import pytest

from scenarios import ScenarioError, apply_overrides, load_scenario, shipped_scenarios
from scenarios.model import spread


def test_shipped_scenarios_load():
    assert {"baseline", "hiring_push", "large", "mmc"} <= set(shipped_scenarios())
    for name in shipped_scenarios():
        assert load_scenario(name).name == name


def test_large_scenario_has_2000_reps_and_50000_leads_a_month():
    large = load_scenario("large")
    reps = sum(sum(role.headcount.values()) for role in large.roles.values())
    assert reps == 2000
    sdrs = sum(large.roles["sdr"].headcount.values())
    volume = sum(s.monthly_volume * (sdrs if s.produced_by == "sdr" else 1) for s in large.lead_sources.values())
    assert volume == pytest.approx(50_000, rel=0.01)


def test_baseline_is_a_mid_size_organisation(baseline):
    reps = sum(sum(role.headcount.values()) for role in baseline.roles.values())
    assert 35 <= reps <= 45 and len(baseline.segments) == 3 and len(baseline.territories) == 4


def test_scenario_found_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(open_shipped("mmc"), encoding="utf-8")
    assert load_scenario(path).name == "mmc"


def open_shipped(name: str) -> str:
    from importlib import resources

    return (resources.files("scenarios") / "library" / f"{name}.yaml").read_text(encoding="utf-8")


def test_overrides_set_nested_keys_and_list_items():
    data = {"roles": {"ae": {"headcount": {"north": 2}}}, "funnel": {"stages": [{"name": "a"}]}}
    result = apply_overrides(data, ["roles.ae.hiring_plan.2027-03=4", "funnel.stages.0.name=b", "roles.ae.headcount.north=5"])
    assert result["roles"]["ae"]["hiring_plan"] == {"2027-03": 4}
    assert result["funnel"]["stages"][0]["name"] == "b"
    assert result["roles"]["ae"]["headcount"]["north"] == 5
    assert data["roles"]["ae"]["headcount"]["north"] == 2  # the input is not changed


@pytest.mark.parametrize(
    "override, expected",
    [
        ("segments.smb.colour=red", "segments.smb.colour: unknown key"),
        ("horizon_months=eighteen", "horizon_months: Input should be a valid integer"),
        ("lead_sources.inbound_smb.monthly_volume=-5", "lead_sources.inbound_smb.monthly_volume: Input should be greater than or equal to 0"),
        ("funnel.mql_rate.smb=1.5", "funnel.mql_rate.smb: Input should be less than or equal to 1"),
        ("roles.cso.hiring_plan.2027-03=1", "roles.cso: no such role"),
        ("roles.ae.hiring_plan.2031-01=2", "roles.ae.hiring_plan.2031-01: month outside the horizon 2027-01..2028-06"),
        ("roles.ae.hiring_plan.2027-13=2", "roles.ae.hiring_plan.2027-13: expected a month as YYYY-MM"),
        ("roles.ae.headcount.atlantis=2", "roles.ae.headcount.atlantis: unknown territory"),
        ("lead_sources.inbound_smb.segment=retail", "lead_sources.inbound_smb.segment: unknown segment 'retail'"),
        ("funnel.sql_rate={smb: 0.3}", "funnel.sql_rate: no value for segment(s) ['enterprise', 'mid_market']"),
        ("start=2027-01-15", "start: expected the first day of a month"),
    ],
)
def test_bad_input_names_the_key_path(override, expected):
    with pytest.raises(ScenarioError) as caught:
        load_scenario("baseline", [override])
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsegments: [a\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken.yaml: line \d+, column \d+"):
        load_scenario(path)


def test_unknown_scenario_lists_the_shipped_ones():
    with pytest.raises(ScenarioError, match="shipped: .*baseline"):
        load_scenario("no-such-scenario")


def test_spread_is_proportional_and_exact():
    assert spread(10, {"a": 0.3, "b": 0.25, "c": 0.25, "d": 0.2}) == {"a": 3, "b": 3, "c": 2, "d": 2}
    assert sum(spread(7, {"a": 1, "b": 1, "c": 1}).values()) == 7


def test_calibration_file_fills_what_the_scenario_leaves_out(tmp_path):
    import json

    fragment = {
        "funnel": {"mql_rate": {"default": 0.9}, "sql_rate": {"default": 0.0}, "response_decay": {"half_life_hours": 5}},
        "seed": 99,
    }
    (tmp_path / "calibration.json").write_text(json.dumps({"scenario": fragment}), encoding="utf-8")
    text = open_shipped("mmc").replace("seed: 7\n", "calibration: calibration.json\n")
    text = text.replace("funnel:\n  mql_rate: {default: 1.0}\n", "funnel:\n")
    path = tmp_path / "calibrated.yaml"
    path.write_text(text, encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.funnel.mql_rate == {"default": 0.9}  # from the calibration
    assert scenario.funnel.response_decay is None  # the scenario's own key wins
    assert scenario.seed == 99


def test_missing_calibration_file_is_named(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(open_shipped("mmc") + "calibration: nowhere.json\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="calibration: no such file"):
        load_scenario(path)


def test_json_ready_writes_strict_json():
    import json

    import numpy as np

    from scenarios.json_values import json_ready

    value = {"rate": np.float64("nan"), "n": np.int64(3), "band": (1.0, np.inf), "ok": np.bool_(True), "fit": object()}
    assert json.loads(json.dumps(json_ready(value, drop=frozenset({"fit"})), allow_nan=False)) == {
        "rate": None, "n": 3, "band": [1.0, None], "ok": True,
    }
