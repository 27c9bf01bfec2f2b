"""Automation portfolios: the optimizer against brute force, effects through the queue, adoption, bad catalogues,
and the command."""

from __future__ import annotations

import itertools
import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from engine import simulate
from engine.simulation import Replication
from experiments.cli import app
from optimizers.automation import AutomationOptions, Estimate, Simulations, plan_automation
from optimizers.automation_catalogue import CatalogueError, apply_portfolio, load_catalogue, start_options
from scenarios import load_scenario

HORIZON = 6
REPLICATIONS = 6
#: Fixed deal sizes keep the Monte Carlo error of bookings to the count of deals, so small effects show.
SCENARIO = [
    f"horizon_months={HORIZON}", "segments.smb.deal_size={dist: fixed, value: 8000}",
    "segments.mid_market.deal_size={dist: fixed, value: 30000}", "segments.enterprise.deal_size={dist: fixed, value: 120000}",
]
BUDGET, QUARTER_BUDGET = 110_000.0, 80_000.0
CATALOGUE = """
items:
  crm:
    effect: {kind: crm_automation, admin_time_freed: 0.33}
    one_time_cost: 30000
    monthly_cost: 2000
    start_months: [2027-01]
    adoption: [0.5, 0.8, 1.0]
  routing:
    effect: {kind: follow_up, response_reduction: 0.5, handling_reduction: 0.05}
    one_time_cost: 20000
    monthly_cost: 3000
    start_months: [2027-01]
    excludes: [engagement]
  engagement:            # shorter SDR work per lead only: any shorter wait comes through the queue
    effect: {kind: follow_up, handling_reduction: 0.3}
    one_time_cost: 25000
    monthly_cost: 2500
    start_months: [2027-01]
    adoption: [0.4, 0.8, 0.9]
  scoring:
    effect: {kind: lead_scoring, accuracy: 0.6, filter_share: 0.1}
    one_time_cost: 20000
    monthly_cost: 1000
    start_months: [2027-01]
    requires: [crm]
  proposal:
    effect: {kind: conversion_uplift, step: proposal, uplift: 0.15}
    one_time_cost: 15000
    monthly_cost: 2000
    start_months: [2027-01, 2027-04]
  mql_boost:
    effect: {kind: conversion_uplift, step: mql, uplift: 0.1}
    one_time_cost: 10000
    monthly_cost: 1000
    start_months: [2027-01]
"""


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("baseline", SCENARIO)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalogue") / "tools.yaml"
    path.write_text(CATALOGUE, encoding="utf-8")
    return load_catalogue(path)


@pytest.fixture(scope="module")
def run():
    """The engine, remembering what it simulated: the brute force reuses the optimizer's simulations."""
    done = {}

    def cached(scenario, replications, seed):
        key = (scenario.model_dump_json(exclude={"name"}), replications, seed)
        if key not in done:
            done[key] = simulate(scenario, replications, seed)
        return done[key]

    return cached


@pytest.fixture(scope="module")
def options():
    return AutomationOptions(budget=BUDGET, quarter_budget=QUARTER_BUDGET, gross_margin=0.75, replications=REPLICATIONS, seed=11)


@pytest.fixture(scope="module")
def report(scenario, catalogue, options, run):
    return plan_automation(scenario, catalogue, options, run)


def spend_by_quarter(catalogue, starts: dict[str, int]) -> np.ndarray:
    """Recomputed from the catalogue: the one-time cost in the start month, then the monthly cost."""
    monthly = np.zeros(HORIZON)
    for name, start in starts.items():
        item = catalogue.items[name]
        monthly[start] += item.one_time_cost
        monthly[start:] += item.monthly_cost
    return monthly.reshape(-1, 3).sum(axis=1)


def feasible_portfolios(catalogue, starts: dict[str, list[int]]):
    """Every portfolio the rules allow: at most one start per item, prerequisites started by then, no exclusions,
    within the total and quarterly budgets."""
    names = list(catalogue.items)
    for choice in itertools.product(*([None, *starts[name]] for name in names)):
        portfolio = {name: start for name, start in zip(names, choice) if start is not None}
        if any(a in portfolio and b in portfolio for a, b in [("routing", "engagement")]):
            continue
        if "scoring" in portfolio and portfolio.get("crm", HORIZON) > portfolio["scoring"]:
            continue
        quarters = spend_by_quarter(catalogue, portfolio)
        if quarters.sum() <= BUDGET + 1e-6 and quarters.max() <= QUARTER_BUDGET + 1e-6:
            yield portfolio


def test_the_choice_is_the_best_portfolio_found_by_brute_force(report, scenario, catalogue, options, run):
    assert report.valuation.starts == {"crm": [0], "routing": [0], "engagement": [0], "scoring": [0], "proposal": [0, 3], "mql_boost": [0]}
    chosen = report.portfolio.starts
    spend = spend_by_quarter(catalogue, chosen)
    assert spend.sum() <= BUDGET and spend.max() <= QUARTER_BUDGET
    assert report.portfolio.spend == pytest.approx(spend.sum())
    simulations = Simulations(scenario, catalogue, options, options.seed, run)
    portfolios = list(feasible_portfolios(catalogue, report.valuation.starts))
    assert chosen in portfolios and 10 < len(portfolios) < 54  # the budgets bind
    values = {frozenset(p.items()): simulations.value(p).mean for p in portfolios}
    best = dict(max(values, key=values.get))
    assert values[frozenset(best.items())] > 0 and len(best) >= 2
    # the best portfolio's lead over the choice, paired replication by replication, is within Monte Carlo error
    lead = Estimate.of(simulations.outcome(best).margins - simulations.outcome(chosen).margins)
    assert lead.low <= 0.0, (best, chosen, lead)
    # the confirmation with fresh random numbers agrees with the valuation's estimate of the choice
    in_sample = simulations.value(chosen)
    assert report.confirmed.low <= in_sample.high and in_sample.low <= report.confirmed.high


def test_tools_that_free_first_touch_time_cut_response_through_the_queue(report):
    """Neither tool shortens the wait a lead feels directly: shorter SDR work per lead, or less admin, drains the
    queue, leads are answered sooner and more of them qualify."""
    for name in ("engagement", "crm"):
        kpis = report.valuation.candidate(name, 0).kpis
        assert kpis["response_hours_mean"]["with"] < 0.8 * kpis["response_hours_mean"]["without"], name
        assert kpis["sql"]["with"] > kpis["sql"]["without"], name
    routing = report.valuation.candidate("routing", 0).kpis  # automated first reply: the felt wait halves
    assert routing["response_hours_mean"]["with"] < 0.6 * routing["response_hours_mean"]["without"]


def test_usage_rate_and_the_leads_worked_with_a_tool_follow_its_adoption_curve(scenario, catalogue):
    portfolio = apply_portfolio(scenario, catalogue, {"engagement": 0, "proposal": 3})
    monthly = simulate(portfolio, 1, seed=2).monthly
    engagement = np.array([0.4, 0.8, 0.9, 0.9, 0.9, 0.9])
    proposal = np.array([np.nan, np.nan, np.nan, 1.0, 1.0, 1.0])
    expected = np.nanmean(np.vstack([engagement, proposal]), axis=0)
    np.testing.assert_allclose(monthly["usage_rate"], expected)
    sim = Replication(portfolio, 2, 0)
    month = np.searchsorted(sim.months, sim.leads.time, side="right") - 1
    share = pd.Series(sim.handling_factor < 1.0).groupby(month).mean().to_numpy()
    counts = np.bincount(month)
    assert np.all(np.abs(share - engagement) < 4 * np.sqrt(engagement * (1 - engagement) / counts) + 1e-9)


BAD = {
    "unknown dependency": ("a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, requires: [zz]}",
                           "items.a.requires: unknown item 'zz'"),
    "circular dependency": ("a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, requires: [b]}\n"
                            "b: {effect: {kind: crm_automation, admin_time_freed: 0.2}, requires: [c]}\n"
                            "c: {effect: {kind: crm_automation, admin_time_freed: 0.2}, requires: [a]}",
                            "items.a.requires: circular dependency a → b → c → a"),
    "negative cost": ("a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, monthly_cost: -100}",
                      "items.a.monthly_cost: Input should be greater than or equal to 0"),
    "accuracy above 1": ("a: {effect: {kind: lead_scoring, accuracy: 1.3}}",
                         "items.a.effect.lead_scoring.accuracy: Input should be less than or equal to 1"),
    "uplift above 1": ("a: {effect: {kind: conversion_uplift, step: mql, uplift: 2}}",
                       "items.a.effect.conversion_uplift.uplift: Input should be less than or equal to 1"),
    "adoption above 1": ("a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, adoption: [0.5, 1.5]}",
                         "items.a.adoption.1: Input should be less than or equal to 1"),
    "unknown kind": ("a: {effect: {kind: magic}}", "items.a.effect: Input tag 'magic'"),
    "cost inside the effect": ("a: {effect: {kind: crm_automation, admin_time_freed: 0.2, monthly_cost: 5}}",
                               "items.a: effect.monthly_cost: belongs to the item"),
    "needs two that exclude each other": (
        "a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, requires: [b, c]}\n"
        "b: {effect: {kind: crm_automation, admin_time_freed: 0.2}, excludes: [c]}\n"
        "c: {effect: {kind: crm_automation, admin_time_freed: 0.2}}",
        "items.a.requires: needs 'b' and 'c' together, but they exclude each other"),
    "bad month": ("a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, earliest_start: 2027-13}",
                  "items.a.earliest_start: expected a month as YYYY-MM"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_catalogue_names_the_item_and_key(case, tmp_path):
    items, message = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text("items:\n" + textwrap.indent(items, "  ") + "\n", encoding="utf-8")
    with pytest.raises(CatalogueError) as error:
        load_catalogue(path)
    assert error.value.source == str(path)
    assert any(problem.startswith(message) for problem in error.value.problems), error.value.problems


def test_catalogue_that_does_not_fit_the_scenario_names_the_item(tmp_path, scenario):
    path = tmp_path / "tools.yaml"
    path.write_text("items:\n  a: {effect: {kind: conversion_uplift, step: demo, uplift: 0.1}}\n", encoding="utf-8")
    with pytest.raises(CatalogueError) as error:
        start_options(load_catalogue(path), scenario, 3)
    assert error.value.problems[0].startswith("items.a.effect.step: unknown funnel step 'demo' in scenario 'baseline'")


def test_shipped_catalogue_fits_the_baseline_with_earliest_starts_and_dependencies():
    catalogue = load_catalogue("example")
    starts = start_options(catalogue, load_scenario("baseline"), 3)
    assert starts["scoring_predictive"] == [3, 6, 9, 12, 15]  # earliest 2027-04, then quarter starts
    assert starts["cpq_proposals"] == [0, 6, 12]  # only its start months
    assert catalogue.prerequisites("forecasting_deal_inspection") == ["crm_data_automation"]


def test_command_writes_the_portfolio_a_runnable_scenario_and_the_report(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text(textwrap.dedent("""
        items:
          routing: {effect: {kind: follow_up, response_reduction: 0.5}, one_time_cost: 1000, monthly_cost: 100}
          scoring: {effect: {kind: lead_scoring, accuracy: 0.5}, monthly_cost: 500, earliest_start: 2027-02}
    """), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "optimize", "automation", "baseline", "--catalogue", str(path), "--budget", "5000", "--out", str(out),
        "-n", "3", "--set", "horizon_months=3", "--quarter-budget", "4000", "--gross-margin", "0.8",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report) >= {"items", "interactions", "chosen", "confirmed_value", "budget_use", "solver"}
    assert report["solver"]["status"] == "optimal"
    assert report["items"]["scoring"]["candidates"][0]["start_month"] == "2027-02"
    assert set(report["items"]["routing"]["candidates"][0]["value"]) == {"mean", "low", "high"}
    assert report["budget_use"]["total"]["spend"] <= 5000
    assert all(q["spend"] <= 4000 for q in report["budget_use"]["by_quarter"].values())
    portfolio = pd.read_csv(out / "portfolio.csv")
    assert list(portfolio["item"]) == list(report["chosen"])
    planned = load_scenario(out / "scenario.yaml")
    assert set(planned.automation) == set(report["chosen"])
    assert "automation portfolio" in result.output


def test_command_refuses_a_bad_catalogue_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("items:\n  a: {effect: {kind: crm_automation, admin_time_freed: 0.2}, requires: [zz]}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["optimize", "automation", "baseline", "--catalogue", str(path), "--budget", "1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}: items.a.requires: unknown item 'zz'; expected one of ['a']"]
