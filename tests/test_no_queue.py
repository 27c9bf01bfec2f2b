"""An organisation that cannot queue (``Replication.cannot_queue``) skips the event passes: computed for all leads at
once, a replication records exactly what the events record on the same seed, replication by replication, and one
condition broken sends it back to the events."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import simpy
import yaml

from calibration import load_mapping, read_export
from engine.initial import carried_work
from engine.leads import Origin
from engine.results import LeadState, lead_states, summarize_replication
from engine.simulation import Replication, _event_times
from experiments.crm_generator import generate_crm
from experiments.forecast import fit_cut, forecast_scenario
from scenarios import load_scenario
from scenarios.loading import with_parameter_draw

#: Open deals at every stage (discovery included), with and without territory and amount, and leads waiting.
PIPELINE = [
    "opportunity,d1,enterprise,north,discovery,4.0,,,,",
    "opportunity,d2,smb,,discovery,0.5,,,,",
    "opportunity,d3,mid_market,south,solution,12.0,25000,,,",
    "opportunity,d4,smb,east,proposal,30.0,,,,",
    "opportunity,d5,enterprise,,negotiation,80.0,150000,,,",
    *(f"opportunity,s{i},smb,west,solution,{i * 1.5:.1f},,,," for i in range(40)),
    *(f"lead,w{i},{('smb', 'mid_market', 'enterprise')[i % 3]},{'north' if i % 2 else ''},,{i * 0.3:.1f},,,," for i in range(30)),
]
#: The baseline's market and funnel over three months with one SDR per territory who takes no time per lead (on
#: office hours: leads arriving overnight are touched together at the opening) and AEs without a slot limit; lead
#: scoring sends some MQLs to nurture, automated follow-up shortens the wait felt, proposals are lost faster than they
#: pass, deals close at a random pace per month, and the SMB funnel comes from a calibration with parameter draws.
UNCONSTRAINED = {
    "horizon_months": 3,
    "roles": {
        "sdr": {"works": "leads", "headcount": {"north": 1, "south": 1, "east": 1, "west": 1},
                "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": 8.5, "end": 17.5},
                "handling_hours": {"dist": "fixed", "value": 0.0}, "admin_share": 0.2},
        "ae": {"works": "opportunities", "headcount": {"north": 1, "south": 1, "east": 1, "west": 1},
               "open_opportunity_limit": 1_000_000},
    },
    "automation": {
        "scoring": {"kind": "lead_scoring", "start_month": "2027-02", "accuracy": 0.6, "filter_share": 0.2},
        "follow_up": {"kind": "follow_up", "start_month": "2027-01", "adoption": [0.5], "response_reduction": 0.5},
    },
    "calibration": "calibration.json",
    "initial_state": {"pipeline": "pipeline.csv"},
}
DRAWS = [{"funnel.sql_rate.smb": 0.2, "lead_sources.inbound_smb.monthly_volume": 600.0},
         {"funnel.sql_rate.smb": 0.5, "lead_sources.inbound_smb.monthly_volume": 1200.0}]


@pytest.fixture(scope="module")
def unconstrained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("unconstrained")
    base = yaml.safe_load((resources.files("scenarios") / "library" / "baseline.yaml").read_text(encoding="utf-8"))
    fragment = {"lead_sources": base.pop("lead_sources"), "funnel": {"sql_rate": {"smb": 0.3}}}
    base["funnel"]["sql_rate"].pop("smb")
    base["funnel"]["stages"][1]["lost_duration_days"] = {"default": {"dist": "exponential", "mean": 6.0}}
    base["funnel"]["closing_pace"] = {"month_sd": 0.3}
    (folder / "calibration.json").write_text(json.dumps({"scenario": fragment, "parameter_draws": DRAWS}))
    header = "kind,id,segment,territory,stage,age_days,amount,owner,role,tenure_months"
    (folder / "pipeline.csv").write_text("\n".join([header, *PIPELINE]) + "\n")
    (folder / "scenario.yaml").write_text(yaml.safe_dump({**base, **UNCONSTRAINED}))
    return folder / "scenario.yaml"


@pytest.fixture(scope="module")
def forecast(tmp_path_factory):
    """The scenario a forecast simulates: calibrated on a generated export, from its open pipeline."""
    folder = tmp_path_factory.mktemp("forecast")
    export, _ = generate_crm(load_scenario("baseline", ["horizon_months=8"]), seed=4)
    export.to_csv(folder / "crm.csv", index=False)
    source, mapping = load_mapping("generated")
    cut = fit_cut(read_export(folder / "crm.csv", mapping, source), mapping, None)
    return forecast_scenario(cut, folder / "pipeline.csv", 4, seed=0)


def both_ways(scenario, replication: int, seed: int) -> tuple[tuple[Replication, object], tuple[Replication, object]]:
    """One replication run for all leads at once, and the same run as events; each with its recorded times."""
    scenario = with_parameter_draw(scenario, replication)
    carried = carried_work(scenario, seed, replication)
    at_once, events = Replication(scenario, seed, replication, carried), Replication(scenario, seed, replication, carried)
    assert at_once.cannot_queue
    events.cannot_queue = False
    return (at_once, at_once.run()), (events, events.run())


def assert_identical(at_once, events, replication: int) -> None:
    (sim, times), (event_sim, event_times) = at_once, events
    assert sim.events == 0 and event_sim.events > 0
    for name, values in vars(times).items():
        np.testing.assert_array_equal(values, getattr(event_times, name), err_msg=name)
    ours = summarize_replication(sim, times, replication, keep_log=True)
    theirs = summarize_replication(event_sim, event_times, replication, keep_log=True)
    pd.testing.assert_frame_equal(ours.monthly, theirs.monthly, check_exact=True)
    pd.testing.assert_frame_equal(ours.lead_log, theirs.lead_log, check_exact=True)
    assert ours.states == theirs.states


@pytest.mark.parametrize("replication", range(4))
def test_without_queues_a_replication_is_the_event_simulation(unconstrained, replication):
    """Carried deals (discovery and every stage, lost and won), waiting leads, nurtured leads, office hours, the
    follow-up tool, a closing pace and parameter draws: every recorded time, the monthly table and the lead log are
    identical."""
    at_once, events = both_ways(load_scenario(unconstrained), replication, seed=7)
    assert_identical(at_once, events, replication)
    sim, times = at_once
    state = lead_states(sim, times)
    for reached in (LeadState.NURTURED, LeadState.NOT_OPPORTUNITY, LeadState.WON, LeadState.LOST):
        assert (state == reached).any(), reached
    waiting = sim.leads.origin == Origin.WAITING
    assert (times.response_hours[waiting] > 0).all() and not np.isnan(times.touch[waiting]).any()


@pytest.mark.parametrize("replication", range(3))
def test_a_forecast_replication_is_the_event_simulation(forecast, replication):
    """The forecast's own scenario: calibrated distributions (lost durations, parameter draws), its open deals."""
    assert_identical(*both_ways(forecast, replication, seed=1), replication)


@pytest.mark.parametrize("override", [
    "roles.sdr.handling_hours={dist: fixed, value: 0.1}",  # a touch takes time: the next lead can wait
    "roles.sdr.headcount={north: 2, south: 1, east: 1, west: 1}",  # who touches a lead depends on the order of events
    "roles.sdr.attrition_hazard=[0.9]",  # a rep leaves: leads wait for nobody
    "roles.ae.open_opportunity_limit=20",  # SQLs can wait for a slot
    "roles.ae.headcount={north: 1, south: 1, east: 1}",  # no slot in the west
])
def test_an_organisation_that_can_queue_runs_as_events(unconstrained, override):
    assert Replication(load_scenario(unconstrained), 7, 0).cannot_queue
    assert not Replication(load_scenario(unconstrained, [override]), 7, 0).cannot_queue


def test_event_times_read_simpys_clock():
    """Each SQL's slot is taken at the time SimPy's clock reads when a call scheduled from the previous one runs:
    now + (t − now), not always t."""
    times = np.sort(np.random.default_rng(0).random(3000) ** 6 * 50.0)
    env, read = simpy.Environment(), []

    def calls():
        for t in times:
            yield env.timeout(t - env.now)
            read.append(env.now)

    env.process(calls())
    env.run()
    assert (np.array(read) != times).any()  # the case the function exists for
    np.testing.assert_array_equal(_event_times(times), read)
