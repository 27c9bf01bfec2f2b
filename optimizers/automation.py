"""Automation investments: which tools to buy and when, valued by simulation and chosen by a MIP.

Every candidate (an item at a start month) is simulated against the same baseline with the same seed, so each
replication pairs the two on the same leads and reps (common random numbers): the value is the mean incremental
margin (bookings × gross margin − cost) with a 95% t-interval over the paired replications. An item that needs
others is valued on top of them. Pairs of items are simulated together at their earliest starts; their
interaction (the joint value less the two values alone) enters the model where its interval (80% by default)
excludes zero.

The portfolio model (Pyomo, HiGHS through ``optimizers.solve``) picks at most one start per item under the total
and per-quarter budgets, dependencies (a start needs its prerequisites started by then) and exclusions, maximising
the sum of values plus the interactions of the pairs chosen together, linearised. The chosen portfolio is then
simulated again with a fresh seed, so the value reported is not the one the choice was made on.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyomo.environ as pyo
from scipy import stats

from engine import Results, simulate
from optimizers.automation_catalogue import Catalogue, apply_portfolio, by_quarter, item_cost, quarter_labels, start_options
from optimizers.headcount import Simulator
from optimizers.solve import SolveOptions, SolveResult, solve
from scenarios import Scenario

#: Horizon KPIs kept for each simulated portfolio, to show how a tool earns its value.
KPIS = ("bookings", "cost", "sql", "won", "response_hours_mean", "usage_rate")

#: A portfolio: item name → horizon start month.
Starts = dict[str, int]


@dataclass(frozen=True)
class AutomationOptions:
    """Budgets, the margin on bookings, and how much simulation to spend.

    ``quarter_budget`` caps the spend of every calendar quarter, ``quarter_budgets`` single quarters (``2027Q3``);
    ``start_step``: months between candidate starts of an item without ``start_months``; ``interactions``: value
    pairs of items together (else the values are taken as additive); an interaction enters the model when its
    interval at ``interaction_confidence`` excludes zero (0: every one measured). The default, 80%, keeps material
    interactions that a 95% test at a few replications would drop (substitutes, complements) and leaves out noise.
    """

    budget: float | None = None
    quarter_budget: float | None = None
    quarter_budgets: dict[str, float] = field(default_factory=dict)
    gross_margin: float = 1.0
    replications: int = 20
    seed: int | None = None
    confirm_seed: int | None = None
    start_step: int = 3
    interactions: bool = True
    interaction_confidence: float = 0.8
    time_limit: float | None = 30.0
    rel_gap: float = 1e-6


# ----- simulating portfolios, paired by replication -----


@dataclass(frozen=True)
class Estimate:
    """A mean over paired replications with its 95% t-interval and standard error."""

    mean: float
    low: float
    high: float
    replications: int

    standard_error: float

    def significant_at(self, confidence: float) -> bool:
        """Whether the interval at ``confidence`` excludes zero (always, at confidence 0)."""
        return abs(self.mean) > stats.t.ppf(0.5 + confidence / 2, self.replications - 1) * self.standard_error

    @classmethod
    def of(cls, differences: np.ndarray, confidence: float = 0.95) -> "Estimate":
        n = len(differences)
        mean = float(differences.mean())
        error = float(differences.std(ddof=1) / np.sqrt(n)) if n > 1 else np.inf
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * error) if n > 1 else np.inf
        return cls(mean, mean - half, mean + half, n, error)

    def as_dict(self) -> dict[str, float]:
        return {"mean": round(self.mean, 2), "low": round(self.low, 2), "high": round(self.high, 2)}


@dataclass(frozen=True)
class Outcome:
    """One simulated portfolio: margin per replication, the mean horizon KPIs and the mean reps on staff at each
    month end (what per-rep tool costs are paid on)."""

    margins: np.ndarray
    kpis: dict[str, float]
    staffed: np.ndarray


class Simulations:
    """Portfolios simulated once each with the same seed and replications, so any two are paired."""

    def __init__(self, scenario: Scenario, catalogue: Catalogue, options: AutomationOptions, seed: int, run: Simulator,
                 on_simulated: Callable[[int], None] | None = None):
        self.scenario, self.catalogue, self.options, self.seed, self.run = scenario, catalogue, options, seed, run
        self.on_simulated = on_simulated
        self._done: dict[frozenset[tuple[str, int]], Outcome] = {}

    def outcome(self, starts: Starts) -> Outcome:
        key = frozenset(starts.items())
        if key not in self._done:
            results = self.run(apply_portfolio(self.scenario, self.catalogue, starts), self.options.replications, self.seed)
            self._done[key] = outcome_of(results, self.options.gross_margin)
            if self.on_simulated:
                self.on_simulated(len(self._done))
        return self._done[key]

    def value(self, starts: Starts, context: Starts | None = None) -> Estimate:
        """Incremental margin of ``starts`` over ``context`` (default: the scenario as it is)."""
        return Estimate.of(self.outcome(starts).margins - self.outcome(context or {}).margins)


def outcome_of(results: Results, gross_margin: float) -> Outcome:
    totals = results.monthly.groupby("replication")[["bookings", "cost"]].sum()
    margins = gross_margin * totals["bookings"].to_numpy() - totals["cost"].to_numpy()
    monthly = results.monthly
    staffed = monthly[[c for c in monthly.columns if c.startswith("headcount_")]].sum(axis=1).groupby(monthly["month"]).mean()
    return Outcome(margins, {kpi: float(results.summary.loc[kpi, "mean"]) for kpi in KPIS}, staffed.to_numpy())


# ----- valuation of the catalogue -----


@dataclass(frozen=True)
class Candidate:
    """An item started in a given month: its simulated value (on top of its prerequisites) and its cost."""

    item: str
    start: int
    value: Estimate
    cost: np.ndarray  # by horizon month
    kpis: dict[str, dict[str, float]]  # KPI → {"without": …, "with": …}

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())

    @property
    def value_per_currency_unit(self) -> float | None:
        return self.value.mean / self.total_cost if self.total_cost > 0 else None


@dataclass(frozen=True)
class Interaction:
    """How much more (or less) two items are worth together than apart, at their earliest starts."""

    items: tuple[str, str]
    value: Estimate


@dataclass(frozen=True)
class Valuation:
    """Every candidate and interaction simulated; ``starts`` holds the items that can start within the horizon,
    ``unavailable`` those that cannot (by their start months, or through what they require)."""

    candidates: list[Candidate]
    interactions: list[Interaction]
    starts: dict[str, list[int]]
    unavailable: list[str]
    quarters: list[str]
    baseline: dict[str, float]

    def candidate(self, item: str, start: int) -> Candidate:
        return next(c for c in self.candidates if c.item == item and c.start == start)


def context_of(catalogue: Catalogue, starts: dict[str, list[int]], names: list[str]) -> Starts:
    """The prerequisites of the named items, each at its earliest candidate start."""
    needed = {other for name in names for other in catalogue.prerequisites(name)} - set(names)
    return {other: starts[other][0] for other in catalogue.items if other in needed}


def interacting_pairs(catalogue: Catalogue, available: list[str]) -> list[tuple[str, str]]:
    """Pairs that can be chosen together and whose joint value is not already measured (one needing the other)."""
    pairs = []
    for a, b in itertools.combinations(available, 2):
        together = {a, b, *catalogue.prerequisites(a), *catalogue.prerequisites(b)}
        if any(catalogue.excluded(x, y) for x, y in itertools.combinations(together, 2)):
            continue
        if a in catalogue.prerequisites(b) or b in catalogue.prerequisites(a):
            continue
        pairs.append((a, b))
    return pairs


def value_catalogue(simulations: Simulations) -> Valuation:
    """Simulate every candidate start of every item, and the pairs, against the same baseline."""
    scenario, catalogue, options = simulations.scenario, simulations.catalogue, simulations.options
    every = start_options(catalogue, scenario, options.start_step)
    starts = {name: months for name, months in every.items() if months}
    baseline = simulations.outcome({})
    candidates = []
    for name in starts:
        item = catalogue.items[name]
        context = context_of(catalogue, starts, [name])
        without = simulations.outcome(context)
        for start in starts[name]:
            portfolio = {**context, name: start}
            with_item = simulations.outcome(portfolio)
            candidates.append(Candidate(
                item=name, start=start, value=simulations.value(portfolio, context),
                cost=item_cost(scenario, item, start, baseline.staffed),
                kpis={kpi: {"without": without.kpis[kpi], "with": with_item.kpis[kpi]} for kpi in KPIS},
            ))
    interactions = []
    for a, b in interacting_pairs(catalogue, list(starts)) if options.interactions else []:
        context = context_of(catalogue, starts, [a, b])
        first_a, first_b = {a: starts[a][0]}, {b: starts[b][0]}
        margins = [simulations.outcome({**context, **part}).margins for part in ({**first_a, **first_b}, first_a, first_b, {})]
        interactions.append(Interaction((a, b), Estimate.of(margins[0] - margins[1] - margins[2] + margins[3])))
    unavailable = [name for name, months in every.items() if not months]
    return Valuation(candidates, interactions, starts, unavailable, quarter_labels(scenario), baseline.kpis)


# ----- the portfolio model: a pure function of the valuation, made of small steps -----


def build_model(valuation: Valuation, catalogue: Catalogue, options: AutomationOptions) -> pyo.ConcreteModel:
    model = pyo.ConcreteModel(name="automation")
    add_choices(model, valuation)
    add_dependencies(model, valuation, catalogue)
    add_exclusions(model, catalogue)
    add_budgets(model, valuation, options)
    add_interactions(model, valuation, options)
    add_objective(model, valuation)
    return model


def add_choices(model: pyo.ConcreteModel, valuation: Valuation) -> None:
    """One binary per item and candidate start; at most one start per item."""
    model.tools = pyo.Set(initialize=list(valuation.starts), ordered=True)
    model.candidates = pyo.Set(initialize=[(c.item, c.start) for c in valuation.candidates], dimen=2, ordered=True)
    model.start = pyo.Var(model.candidates, domain=pyo.Binary)
    model.chosen = pyo.Expression(model.tools, rule=lambda m, item: sum(m.start[item, s] for s in valuation.starts[item]))
    model.one_start = pyo.Constraint(model.tools, rule=lambda m, item: m.chosen[item] <= 1)


def add_dependencies(model: pyo.ConcreteModel, valuation: Valuation, catalogue: Catalogue) -> None:
    """An item starting in month s needs each item it requires started in s or before."""
    rows = [(item, needed, s) for item, s in model.candidates for needed in catalogue.items[item].requires]
    model.requires = pyo.Constraint(
        pyo.Set(initialize=rows, dimen=3, ordered=True),
        rule=lambda m, item, needed, s: m.start[item, s] <= sum(m.start[needed, t] for t in valuation.starts[needed] if t <= s),
    )


def add_exclusions(model: pyo.ConcreteModel, catalogue: Catalogue) -> None:
    pairs = [(a, b) for a, b in itertools.combinations(model.tools, 2) if catalogue.excluded(a, b)]
    model.excludes = pyo.Constraint(
        pyo.Set(initialize=pairs, dimen=2, ordered=True), rule=lambda m, a, b: m.chosen[a] + m.chosen[b] <= 1
    )


def add_budgets(model: pyo.ConcreteModel, valuation: Valuation, options: AutomationOptions) -> None:
    """The whole horizon's spend within the budget, and each quarter's within its own."""
    cost = {(c.item, c.start): by_quarter(valuation.quarters, c.cost) for c in valuation.candidates}
    model.spend = pyo.Expression(
        pyo.Set(initialize=list(dict.fromkeys(valuation.quarters)), ordered=True),
        rule=lambda m, quarter: sum(cost[key].get(quarter, 0.0) * m.start[key] for key in m.candidates),
    )
    model.total_spend = pyo.Expression(expr=sum(model.spend[q] for q in model.spend))
    if options.budget is not None:
        model.budget = pyo.Constraint(expr=model.total_spend <= options.budget)
    limits = quarter_limits(valuation.quarters, options)
    model.quarter_budget = pyo.Constraint(
        pyo.Set(initialize=list(limits), ordered=True), rule=lambda m, quarter: m.spend[quarter] <= limits[quarter]
    )


def quarter_limits(quarters: list[str], options: AutomationOptions) -> dict[str, float]:
    """The spending limit of each quarter of the horizon that has one."""
    limits = {q: options.quarter_budget for q in dict.fromkeys(quarters) if options.quarter_budget is not None}
    return limits | {q: v for q, v in options.quarter_budgets.items() if q in quarters}


def add_interactions(model: pyo.ConcreteModel, valuation: Valuation, options: AutomationOptions) -> None:
    """``both[a, b]`` is 1 exactly when a and b are both chosen (the product of two binaries, linearised), for the
    pairs whose interaction is significant."""
    pairs = [i.items for i in valuation.interactions if i.value.significant_at(options.interaction_confidence)]
    model.pairs = pyo.Set(initialize=pairs, dimen=2, ordered=True)
    model.both = pyo.Var(model.pairs, bounds=(0, 1))
    model.both_a = pyo.Constraint(model.pairs, rule=lambda m, a, b: m.both[a, b] <= m.chosen[a])
    model.both_b = pyo.Constraint(model.pairs, rule=lambda m, a, b: m.both[a, b] <= m.chosen[b])
    model.both_ab = pyo.Constraint(model.pairs, rule=lambda m, a, b: m.both[a, b] >= m.chosen[a] + m.chosen[b] - 1)


def add_objective(model: pyo.ConcreteModel, valuation: Valuation) -> None:
    values = {(c.item, c.start): c.value.mean for c in valuation.candidates}
    interactions = {i.items: i.value.mean for i in valuation.interactions}
    model.value = pyo.Expression(expr=(
        sum(values[key] * model.start[key] for key in model.candidates)
        + sum(interactions[pair] * model.both[pair] for pair in model.pairs)
    ))
    model.objective = pyo.Objective(expr=model.value, sense=pyo.maximize)


# ----- reading the solved model back, in one place -----


@dataclass(frozen=True)
class Portfolio:
    """The items chosen with their start months, and the model's view of their value and spend."""

    starts: Starts
    model_value: float
    spend: float
    spend_by_quarter: dict[str, float]


def read_portfolio(model: pyo.ConcreteModel) -> Portfolio:
    starts = {item: s for (item, s), var in model.start.items() if pyo.value(var) > 0.5}
    return Portfolio(
        starts=starts,
        model_value=float(pyo.value(model.value)),
        spend=float(pyo.value(model.total_spend)),
        spend_by_quarter={q: float(pyo.value(model.spend[q])) for q in model.spend},
    )


# ----- the whole job -----


@dataclass(frozen=True)
class AutomationReport:
    """The valuation, the model's choice, and the choice simulated again."""

    valuation: Valuation
    solve: SolveResult
    portfolio: Portfolio | None
    scenario: Scenario | None
    confirmed: Estimate | None
    confirmed_kpis: dict[str, dict[str, float]] = field(default_factory=dict)
    seed: int = 0
    confirm_seed: int = 0


def plan_automation(
    scenario: Scenario,
    catalogue: Catalogue,
    options: AutomationOptions,
    run: Simulator | None = None,
    on_simulated: Callable[[int], None] | None = None,
) -> AutomationReport:
    """Value the catalogue by simulation, choose the portfolio, and confirm it with fresh random numbers."""
    run = run or (lambda s, n, seed: simulate(s, n, seed))
    seed = scenario.seed if options.seed is None else options.seed
    confirm_seed = seed + 1 if options.confirm_seed is None else options.confirm_seed
    valuation = value_catalogue(Simulations(scenario, catalogue, options, seed, run, on_simulated))
    began = time.perf_counter()
    model = build_model(valuation, catalogue, options)
    result = solve(model, SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap), build_seconds=time.perf_counter() - began)
    if not result.has_solution:
        return AutomationReport(valuation, result, None, None, None, seed=seed, confirm_seed=confirm_seed)
    portfolio = read_portfolio(model)
    confirm = Simulations(scenario, catalogue, options, confirm_seed, run)
    chosen = confirm.outcome(portfolio.starts)
    kpis = {kpi: {"without": confirm.outcome({}).kpis[kpi], "with": chosen.kpis[kpi]} for kpi in KPIS}
    return AutomationReport(
        valuation, result, portfolio, apply_portfolio(scenario, catalogue, portfolio.starts),
        confirm.value(portfolio.starts), kpis, seed, confirm_seed,
    )
