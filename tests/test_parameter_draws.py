"""Estimation error in the bands: a calibrated scenario's replications run on the fit's parameter draws, what the
user sets is not drawn, and the draws can be turned off."""

from __future__ import annotations

import json

import pytest
import yaml

from engine import simulate
from engine.initial import forget_warm_ups
from scenarios import ScenarioError, load_scenario

DRAWS = [{"funnel.mql_rate.smb": 0.0, "lead_sources.inbound_smb.monthly_volume": 300.0},
         {"funnel.mql_rate.smb": 1.0, "lead_sources.inbound_smb.monthly_volume": 900.0}]


def write(folder, draws=DRAWS, **scenario) -> str:
    """The baseline over two months whose lead sources and SMB MQL rate come from a calibration with ``draws``."""
    base = yaml.safe_load(open(_baseline_path(), encoding="utf-8"))
    fragment = {"lead_sources": base.pop("lead_sources"), "funnel": {"mql_rate": {"smb": 0.45}}}
    base["funnel"]["mql_rate"] = {"default": 0.6}
    (folder / "calibration.json").write_text(json.dumps({"scenario": fragment, "parameter_draws": draws}))
    data = {**base, "calibration": "calibration.json", "horizon_months": 2, **scenario}
    (folder / "scenario.yaml").write_text(yaml.safe_dump(data))
    return str(folder / "scenario.yaml")


def _baseline_path():
    from importlib import resources

    return resources.files("scenarios") / "library" / "baseline.yaml"


def smb_by_replication(scenario) -> list[tuple[float, float]]:
    """Per replication: SMB leads that arrived and the share that became MQLs."""
    result = []
    for r in range(4):
        log = simulate_log(scenario, r)
        smb = log[log["segment"].eq("smb") & log["origin"].eq("new")]
        result.append((len(smb), (smb["state"] != "not_mql").mean()))
    return result


def simulate_log(scenario, replication):
    from engine import run_replication

    return run_replication(scenario, replication, keep_log=True).lead_log


def test_replication_r_runs_on_draw_r_mod_n(tmp_path):
    scenario = load_scenario(write(tmp_path))
    assert len(scenario.parameter_draws) == 2
    (n0, mql0), (n1, mql1), (n2, mql2), _ = smb_by_replication(scenario)
    assert mql0 == 0.0 and mql2 == 0.0 and mql1 == 1.0
    assert n1 > 2 * n0  # 900 a month against 300


def test_what_the_user_sets_is_not_drawn(tmp_path):
    """A key the scenario file gives, or a --set, wins over the draws; the others are still drawn."""
    funnel = yaml.safe_load(open(_baseline_path(), encoding="utf-8"))["funnel"]
    scenario = load_scenario(write(tmp_path, funnel=funnel))  # the file gives mql_rate.smb itself
    assert all("funnel.mql_rate.smb" not in draw for draw in scenario.parameter_draws)
    overridden = load_scenario(write(tmp_path), ["lead_sources.inbound_smb.monthly_volume=600"])
    assert all(set(draw) == {"funnel.mql_rate.smb"} for draw in overridden.parameter_draws)


def test_parameter_uncertainty_off(tmp_path):
    scenario = load_scenario(write(tmp_path), ["parameter_uncertainty=false"])
    rates = [mql for _, mql in smb_by_replication(scenario)]
    assert 0.3 < min(rates) and max(rates) < 0.6  # the baseline's own 0.45 in every replication
    first = simulate(scenario, 2).monthly
    forget_warm_ups()  # the warm-ups simulated again, not read back
    assert first.equals(simulate(scenario, 2).monthly)


def test_a_draw_that_does_not_fit_the_scenario_is_one_line(tmp_path):
    with pytest.raises(ScenarioError) as error:
        load_scenario(write(tmp_path, draws=[{"funnel.mql_rate.smb": 1.5}]))
    assert len(error.value.problems) == 1 and error.value.problems[0].startswith("parameter_draws.0: funnel.mql_rate.smb")
    with pytest.raises(ScenarioError, match="sets other keys"):
        load_scenario(write(tmp_path, draws=[{"funnel.mql_rate.smb": 0.1}, {"funnel.sql_rate.smb": 0.1}]))
