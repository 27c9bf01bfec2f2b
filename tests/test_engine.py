"""Properties of the engine on the shipped scenarios: conservation, reproducibility, staffing, automation."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest

from engine import LEAD_LOG_COLUMNS, MONTHLY_COLUMNS, LeadState, run_replication, simulate
from engine.calendar import month_starts
from engine.initial import forget_warm_ups
from engine.results import lead_states
from engine.simulation import Replication
from experiments.runner import run_replications
from scenarios import load_scenario


def test_every_lead_ends_in_exactly_one_state(baseline):
    sim = Replication(baseline, seed=3, replication=0)
    times = sim.run()
    state = lead_states(sim, times)
    counts = np.bincount(state, minlength=len(LeadState))
    # The queues the simulation holds at the end agree with the states derived from recorded times.
    assert counts[LeadState.WAITING_FIRST_TOUCH] == sum(len(pool.queue) for pool in sim.first_touch)
    assert counts[LeadState.WAITING_OWNER] == sum(len(pool.queue) for pool in sim.owners)
    assert counts[LeadState.IN_FIRST_TOUCH] == sum(sim.busy)
    holding = counts[[LeadState.IN_DISCOVERY, LeadState.OPEN_OPPORTUNITY]].sum()
    assert holding == sum(pool.open for pool in sim.owners)


def test_a_replication_is_freed_as_soon_as_it_is_unused(baseline):
    """No reference cycle keeps a replication (hundreds of MB on large scenarios) alive until the garbage collector
    runs: replications in a loop then never hold more than one at a time."""
    gc.disable()
    try:
        for replication in range(4):  # replication 1: an SDR leaves after the last close before the horizon
            sim = Replication(baseline, seed=3, replication=replication)
            sim.run()
            alive = weakref.ref(sim)
            del sim
            assert alive() is None, f"replication {replication} still referenced"
    finally:
        gc.enable()


def test_monthly_flows_are_conserved():
    """From an empty start, every lead that arrives is counted once at each step it reaches and ends in one state."""
    result = run_replication(load_scenario("baseline", ["initial_state.warm_up_months=0"]), 0)
    monthly, states = result.monthly, result.states
    assert monthly["leads"].sum() == sum(states.values())
    assert monthly["leads"].sum() - monthly["mql"].sum() == states["not_mql"]
    assert monthly["won"].sum() == states["won"] and monthly["lost"].sum() == states["lost"]
    downstream = ["waiting_owner", "in_discovery", "not_opportunity", "open_opportunity", "won", "lost"]
    assert monthly["sql"].sum() == sum(states[s] for s in downstream)
    assert monthly["opportunities"].sum() == states["open_opportunity"] + states["won"] + states["lost"]
    assert monthly["pipeline"].iloc[-1] == states["open_opportunity"]


def test_work_carried_in_ends_in_one_state_too(baseline):
    """From the warm-up, the leads that arrive and the items carried in (waiting leads, deals holding slots) each end
    in exactly one state; every deal won or lost in the horizon is counted in its close month."""
    result = run_replication(baseline, 0, keep_log=True)
    log, states, monthly = result.lead_log, result.states, result.monthly
    carried = log["origin"] != "new"
    assert carried.sum() > 100 and (log["arrival_day"][carried] < 0).all()
    assert monthly["leads"].sum() + carried.sum() == sum(states.values()) == len(log)
    assert monthly["won"].sum() == states["won"] and monthly["lost"].sum() == states["lost"]
    assert log[log["origin"].eq("deal")]["state"].isin(["won", "lost", "not_opportunity", "open_opportunity", "in_discovery"]).all()


def test_outputs_have_the_documented_columns(baseline):
    """The column tables in engine.results are the outputs' documentation: they must match the frames exactly."""
    result = run_replication(baseline, 0, keep_log=True)
    documented = []
    for column in MONTHLY_COLUMNS:
        documented += [column.replace("<role>", role) for role in baseline.roles] if "<role>" in column else [column]
    assert sorted(result.monthly.columns) == sorted(documented)
    assert list(result.lead_log.columns) == list(LEAD_LOG_COLUMNS)


def test_same_seed_same_results_different_seed_different(baseline):
    first = run_replication(baseline, 2, seed=11)
    forget_warm_ups()  # the warm-up simulated again, not read back
    again = run_replication(baseline, 2, seed=11)
    pd.testing.assert_frame_equal(first.monthly, again.monthly)
    other = run_replication(baseline, 2, seed=12)
    assert not first.monthly.equals(other.monthly)


def test_parallel_replications_equal_sequential(baseline):
    short = baseline.model_copy(update={"horizon_months": 4})
    sequential = run_replications(short, 3, seed=5, workers=1)
    parallel = run_replications(short, 3, seed=5, workers=2)
    pd.testing.assert_frame_equal(sequential.monthly, parallel.monthly)
    pd.testing.assert_frame_equal(sequential.summary, parallel.summary)


def test_common_random_numbers_share_leads_across_staffing(baseline):
    """A staffing change leaves the inbound arrivals and every lead's luck unchanged."""
    more = load_scenario("baseline", ["roles.sdr.headcount.north=9"])
    logs = [run_replication(s, 0, keep_log=True).lead_log for s in (baseline, more)]
    a, b = (log[(log["source"] != "outbound_mid_market") & log["origin"].eq("new")].reset_index(drop=True) for log in logs)
    pd.testing.assert_series_equal(a["arrival_day"], b["arrival_day"])
    north = a["territory"] == "north"
    assert b.loc[north, "response_hours"].mean() < a.loc[north, "response_hours"].mean()


def test_hiring_plan_lands_after_the_lag_and_ramps():
    scenario = load_scenario("baseline", [
        "roles.ae.attrition_hazard=[0]", "roles.ae.hiring_plan.2027-03.north=3", "roles.ae.hiring_lag_months=2",
    ])
    monthly = run_replication(scenario, 0).monthly.set_index("month")
    assert monthly.loc["2027-04", "headcount_ae"] == 20
    assert monthly.loc["2027-05", "headcount_ae"] == 23  # requisitions of March start in May
    ramp = [0.2, 0.4, 0.6, 0.8, 0.9]
    for k, share in enumerate(ramp):
        assert monthly["ramped_ae"].iloc[4 + k] == pytest.approx(20 + 3 * share)
    assert monthly["ramped_ae"].iloc[4 + len(ramp)] == pytest.approx(23)


def test_shorthand_hiring_plan_spreads_by_lead_share():
    scenario = load_scenario("baseline", ["roles.sdr.attrition_hazard=[0]", "roles.sdr.hiring_plan.2027-01=10"])
    sim = Replication(scenario, 0, 0)
    hires = pd.Series([r.territory for r in sim.reps if r.role == "sdr" and r.hired]).value_counts()
    assert hires.to_dict() == {"north": 3, "south": 3, "east": 2, "west": 2}  # shares 0.3/0.25/0.25/0.2


def test_attrition_follows_the_hazard():
    """With a constant monthly hazard h and no backfill, the surviving share after m months is (1 - h)^m."""
    scenario = load_scenario("mmc", [
        "roles.server.headcount.only=2000", "roles.server.attrition_hazard=[0.05]", "horizon_months=12",
        "lead_sources.arrivals.monthly_volume=10",
    ])
    headcount = run_replication(scenario, 0).monthly["headcount_server"].to_numpy()
    expected = 2000 * 0.95 ** np.arange(1, 13)
    sd = np.sqrt(2000 * 0.95 ** np.arange(1, 13) * (1 - 0.95 ** np.arange(1, 13)))
    assert np.all(np.abs(headcount - expected) < 4 * sd)


def test_backfill_replaces_leavers():
    scenario = load_scenario("baseline", ["roles.sdr.attrition_hazard=[0.2]", "roles.sdr.backfill_lag_months=1"])
    sim = Replication(scenario, 0, 0)
    sdrs = [r for r in sim.reps if r.role == "sdr"]
    leavers = [r for r in sdrs if r.end < sim.horizon]
    backfills = [r for r in sdrs if r.hired]
    months = month_starts(scenario)
    in_time = [r for r in leavers if np.searchsorted(months, r.end, side="right") + 1 < scenario.horizon_months]
    assert len(backfills) == len(in_time) > 0


def test_seasonality_and_trend_shape_arrivals():
    scenario = load_scenario("mmc", [
        "lead_sources.arrivals.monthly_volume=3000", "lead_sources.arrivals.trend=0.1", "horizon_months=12",
        "roles.server.headcount.only=20",
    ])
    results = simulate(scenario, 3)
    leads = results.monthly.groupby("month")["leads"].mean().to_numpy()
    days = np.diff(month_starts(scenario))
    expected = 3000 / (365.25 / 12) * days * 1.1 ** np.arange(12)
    assert np.all(np.abs(leads - expected) < 4 * np.sqrt(expected / 3))


def test_follow_up_automation_cuts_response_and_shows_adoption(baseline):
    tool = [
        "automation.auto_follow_up.kind=follow_up", "automation.auto_follow_up.start_month=2027-04",
        "automation.auto_follow_up.response_reduction=0.5", "automation.auto_follow_up.handling_reduction=0.2",
        "automation.auto_follow_up.adoption=[0.2, 0.5, 0.8, 0.9]",
    ]
    with_tool = load_scenario("baseline", tool)
    before = simulate(baseline, 2).monthly.groupby("month").mean(numeric_only=True)
    after = simulate(with_tool, 2).monthly.groupby("month").mean(numeric_only=True)
    assert list(after["usage_rate"].iloc[:6]) == [0, 0, 0, 0.2, 0.5, 0.8]
    assert after["usage_rate"].iloc[-1] == 0.9
    late = slice(8, None)
    assert after["response_hours_mean"].iloc[late].mean() < before["response_hours_mean"].iloc[late].mean()
    assert after["sql"].iloc[late].sum() > before["sql"].iloc[late].sum()


def test_lead_scoring_filters_and_prioritises(baseline):
    scored = load_scenario("baseline", [
        "automation.scoring.kind=lead_scoring", "automation.scoring.start_month=2027-01",
        "automation.scoring.accuracy=0.8", "automation.scoring.filter_share=0.25",
    ])
    result = run_replication(scored, 0)
    share = result.states["nurtured"] / (sum(result.states.values()) - result.states["not_mql"])
    assert share == pytest.approx(0.25, abs=0.02)
    plain = run_replication(baseline, 0)
    # Filtering the least promising quarter costs few SQLs: far fewer than a quarter.
    assert result.totals["sql"] > 0.9 * plain.totals["sql"]


def test_outbound_leads_follow_prospecting_reps():
    """An outbound source's volume is per ramped rep: its expected count is volume × ramped rep-months."""
    base = ["lead_sources.inbound_smb.monthly_volume=0", "lead_sources.inbound_mid_market.monthly_volume=0",
            "lead_sources.inbound_enterprise.monthly_volume=0", "roles.sdr.attrition_hazard=[0]",
            "lead_sources.outbound_mid_market.weekday_weights=[1, 1, 1, 1, 1, 1, 1]"]
    few = run_replication(load_scenario("baseline", base), 0).monthly
    more = run_replication(load_scenario("baseline", [*base, "roles.sdr.headcount.west=14"]), 0).monthly
    days = np.diff(month_starts(load_scenario("baseline")))
    for monthly, sdrs in ((few, 20), (more, 30)):
        expected = 6 * sdrs * days / (365.25 / 12)
        assert np.all(np.abs(monthly["leads"] - expected) < 4 * np.sqrt(expected))
