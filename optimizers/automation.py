"""Automation investments: which tools to buy and when, valued by simulation and chosen by a MIP.

Every candidate (an item at a start month) is simulated against the same baseline with the same seed, so each
replication pairs the two on the same leads and reps (common random numbers): the value is the mean incremental
margin (bookings × gross margin − cost) with a 95% t-interval over the paired replications. An item that needs
others is valued on top of them. Pairs of items are simulated together at their earliest starts; their
interaction (the joint value less the two values alone) enters the model where its interval (80% by default)
excludes zero.

The portfolio model (Pyomo, HiGHS through ``optimizers.solve``) picks at most one start per item under the total
and per-quarter budgets, dependencies (a start needs its prerequisites started by then) and exclusions, maximising
the sum of values plus the interactions of the pairs chosen together, linearised.

The model's choice is then checked as a set (``check_portfolios``): three tools relieving one queue are worth less
(or more) together than their values and pairwise interactions say. The chosen portfolio is simulated jointly, on
the same random numbers; the model is solved again with that exact set cut off, and the next portfolio it proposes
is simulated too, until the model rates every portfolio not yet simulated below the lower end of the 95% interval
of the best simulated one. The best simulated portfolio is chosen, and its paired comparison with the runner-up
reported.

Replications run in batches, each with a seed of its own derived from the run's, so a portfolio can be simulated a
batch at a time and stay paired with the others replication by replication. Racing stops simulating a portfolio
that is clearly dominated: in the valuation, one whose value against its context has a 95% upper bound below zero
(it loses money); in the check, one whose paired difference with the best simulated portfolio has a 95% upper
bound below zero. Its estimate stays, with the replications it had.

The chosen portfolio is finally simulated again with a fresh seed, so the value reported is not the one the choice
was made on.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

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
    ``batch``: replications simulated at a time; ``racing``: stop simulating clearly dominated portfolios after
    ``min_batches`` batches; ``max_checked``: most portfolios the check simulates jointly.
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
    batch: int = 5
    racing: bool = True
    min_batches: int = 2
    max_checked: int = 12


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

    @classmethod
    def joined(cls, parts: list["Outcome"]) -> "Outcome":
        """Batches of one portfolio as one outcome: margins in batch order, means weighted by replications."""
        sizes = np.array([len(part.margins) for part in parts], dtype=float)
        return cls(
            np.concatenate([part.margins for part in parts]),
            {kpi: float(np.average([part.kpis[kpi] for part in parts], weights=sizes)) for kpi in parts[0].kpis},
            np.average([part.staffed for part in parts], axis=0, weights=sizes),
        )


def batch_seed(seed: int, batch: int) -> int:
    """The seed of a batch of replications: the run's own for the first, then one derived from it for each."""
    return seed if batch == 0 else int(np.random.SeedSequence([seed, batch]).generate_state(1)[0])


class Simulations:
    """Portfolios simulated in batches of replications with the same batch seeds, so any two are paired replication
    by replication over the batches both have."""

    def __init__(self, scenario: Scenario, catalogue: Catalogue, options: AutomationOptions, seed: int, run: Simulator,
                 on_simulated: Callable[[int], None] | None = None):
        self.scenario, self.catalogue, self.options, self.seed, self.run = scenario, catalogue, options, seed, run
        self.on_simulated = on_simulated
        self.sizes = [min(options.batch, options.replications - start) for start in range(0, options.replications, options.batch)]
        self._done: dict[frozenset[tuple[str, int]], list[Outcome]] = {}

    def outcome(self, starts: Starts, batches: int | None = None) -> Outcome:
        """The portfolio over its first ``batches`` batches (default: all), simulating those it lacks."""
        key = frozenset(starts.items())
        done = self._done.setdefault(key, [])
        wanted = len(self.sizes) if batches is None else min(batches, len(self.sizes))
        if len(done) < wanted:
            scenario = apply_portfolio(self.scenario, self.catalogue, starts)
            for batch in range(len(done), wanted):
                done.append(outcome_of(self.run(scenario, self.sizes[batch], batch_seed(self.seed, batch)), self.options.gross_margin))
            if self.on_simulated:
                self.on_simulated(len(self._done))
        return Outcome.joined(done[:wanted])

    def batches(self, starts: Starts) -> int:
        """Batches simulated so far for a portfolio."""
        return len(self._done.get(frozenset(starts.items()), []))

    def value(self, starts: Starts, context: Starts | None = None) -> Estimate:
        """Incremental margin of ``starts`` over ``context`` (default: the scenario as it is), over the batches
        ``starts`` has (all of them if it was never simulated)."""
        batches = self.batches(starts) or len(self.sizes)
        return Estimate.of(self.outcome(starts, batches).margins - self.outcome(context or {}, batches).margins)

    def race(self, starts: Starts, rival: Starts) -> bool:
        """Simulate ``starts`` batch by batch; with racing, stop once its margin less ``rival``'s, paired, has a
        95% upper bound below zero after the minimum number of batches. True when it ran to the end."""
        for batch in range(1, len(self.sizes) + 1):
            mine = self.outcome(starts, batch).margins
            if self.options.racing and self.options.min_batches <= batch < len(self.sizes):
                if Estimate.of(mine - self.outcome(rival, batch).margins).high < 0:
                    return False
        return True

    @property
    def replications_saved(self) -> int:
        """Replications racing spared: for every portfolio stopped early, those it did not run."""
        total = sum(self.sizes)
        return sum(total - sum(self.sizes[: len(done)]) for done in self._done.values())

    @property
    def replications_run(self) -> int:
        return sum(sum(self.sizes[: len(done)]) for done in self._done.values())


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
    """Simulate every candidate start of every item, and the pairs, against the same baseline; with racing, a
    candidate or pair clearly losing money against its context stops early (items others require never do: their
    value is part of their dependants')."""
    scenario, catalogue, options = simulations.scenario, simulations.catalogue, simulations.options
    every = start_options(catalogue, scenario, options.start_step)
    starts = {name: months for name, months in every.items() if months}
    required = {other for name in starts for other in catalogue.prerequisites(name)}
    baseline = simulations.outcome({})
    candidates = []
    for name in starts:
        item = catalogue.items[name]
        context = context_of(catalogue, starts, [name])
        without = simulations.outcome(context)
        for start in starts[name]:
            portfolio = {**context, name: start}
            if name in required:
                simulations.outcome(portfolio)
            else:
                simulations.race(portfolio, context)
            with_item = simulations.outcome(portfolio, simulations.batches(portfolio))
            candidates.append(Candidate(
                item=name, start=start, value=simulations.value(portfolio, context),
                cost=item_cost(scenario, item, start, baseline.staffed),
                kpis={kpi: {"without": without.kpis[kpi], "with": with_item.kpis[kpi]} for kpi in KPIS},
            ))
    interactions = []
    for a, b in interacting_pairs(catalogue, list(starts)) if options.interactions else []:
        context = context_of(catalogue, starts, [a, b])
        first_a, first_b = {a: starts[a][0]}, {b: starts[b][0]}
        simulations.race({**context, **first_a, **first_b}, context)
        batches = simulations.batches({**context, **first_a, **first_b})
        margins = [
            simulations.outcome({**context, **part}, batches).margins for part in ({**first_a, **first_b}, first_a, first_b, {})
        ]
        interactions.append(Interaction((a, b), Estimate.of(margins[0] - margins[1] - margins[2] + margins[3])))
    unavailable = [name for name, months in every.items() if not months]
    return Valuation(candidates, interactions, starts, unavailable, quarter_labels(scenario), baseline.kpis)


# ----- the portfolio model: a pure function of the valuation, made of small steps -----


def build_model(valuation: Valuation, catalogue: Catalogue, options: AutomationOptions) -> pyo.ConcreteModel:
    model = pyo.ConcreteModel(name="automation")
    add_choices(model, valuation)
    model.cuts = pyo.ConstraintList()  # portfolios already simulated jointly (``cut_off``)
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


def cut_off(model: pyo.ConcreteModel, starts: Starts) -> None:
    """Exclude exactly this portfolio from the model: at least one of its starts dropped or another start added."""
    chosen = set(starts.items())
    model.cuts.add(
        sum(1 - model.start[key] for key in chosen) + sum(model.start[key] for key in model.candidates if key not in chosen) >= 1
    )


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


# ----- checking the chosen set by joint simulation -----


@dataclass(frozen=True)
class Checked:
    """A portfolio the check simulated jointly: the model's value, the simulated value against today (over the
    replications it ran) and whether it was dominated: clearly below the best simulated then (paired 95% upper bound
    below zero), where racing stops simulating it."""

    portfolio: Portfolio
    value: Estimate
    dominated: bool


@dataclass(frozen=True)
class PortfolioCheck:
    """The portfolios simulated jointly, in the order the model proposed them, the one chosen (the best simulated),
    the paired comparison of the chosen with the runner-up (chosen − runner-up, 95%), and why the check stopped:
    ``bound`` (every portfolio not simulated is rated by the model below ``bound``, the lower end of the chosen
    portfolio's 95% interval), ``exhausted`` (no feasible portfolio left) or ``limit`` (``max_checked`` reached)."""

    checked: list[Checked]
    chosen: int
    runner_up: int | None
    comparison: Estimate | None
    stopped: Literal["bound", "exhausted", "limit"]
    bound: float | None
    next_model_value: float | None


def check_portfolios(model: pyo.ConcreteModel, first: Portfolio, simulations: Simulations, options: AutomationOptions) -> PortfolioCheck:
    """Simulate the model's portfolio jointly, cut it off and solve again, simulating each next proposal (raced
    against the best so far), until the model rates the best portfolio not yet simulated below the lower end of the
    best simulated portfolio's 95% interval (at least two are simulated, so there is a runner-up)."""
    checked: list[Checked] = []
    best: int | None = None
    proposal: Portfolio | None = first
    stopped: Literal["bound", "exhausted", "limit"] = "exhausted"
    solve_options = SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap, explain=False)
    while proposal is not None:
        full = best is None or simulations.race(proposal.starts, checked[best].portfolio.starts)
        if best is None:
            simulations.outcome(proposal.starts)  # the first, with nothing to race against
        checked.append(Checked(proposal, simulations.value(proposal.starts), not full))
        if full and (best is None or checked[-1].value.mean > checked[best].value.mean):
            best = len(checked) - 1
        cut_off(model, proposal.starts)
        if len(checked) >= options.max_checked:
            stopped = "limit"
            break
        result = solve(model, solve_options)
        proposal = read_portfolio(model) if result.has_solution else None
        if proposal is not None and len(checked) >= 2 and proposal.model_value < checked[best].value.low:
            stopped = "bound"
            break
    others = [i for i in range(len(checked)) if i != best]
    runner_up = max(others, key=lambda i: checked[i].value.mean, default=None)
    comparison = None
    if runner_up is not None:
        batches = simulations.batches(checked[runner_up].portfolio.starts)
        comparison = Estimate.of(
            simulations.outcome(checked[best].portfolio.starts, batches).margins
            - simulations.outcome(checked[runner_up].portfolio.starts, batches).margins
        )
    return PortfolioCheck(
        checked, best, runner_up, comparison, stopped, checked[best].value.low,
        proposal.model_value if proposal is not None and stopped == "bound" else None,
    )


# ----- the whole job -----


@dataclass(frozen=True)
class AutomationReport:
    """The valuation, the model's first choice, the check that chose among portfolios simulated jointly, and the
    chosen portfolio simulated again with fresh random numbers."""

    valuation: Valuation
    solve: SolveResult
    portfolio: Portfolio | None
    scenario: Scenario | None
    confirmed: Estimate | None
    confirmed_kpis: dict[str, dict[str, float]] = field(default_factory=dict)
    seed: int = 0
    confirm_seed: int = 0
    check: PortfolioCheck | None = None
    replications_run: int = 0
    replications_saved: int = 0


def plan_automation(
    scenario: Scenario,
    catalogue: Catalogue,
    options: AutomationOptions,
    run: Simulator | None = None,
    on_simulated: Callable[[int], None] | None = None,
) -> AutomationReport:
    """Value the catalogue by simulation, choose the portfolio, check it and its rivals jointly, and confirm the
    choice with fresh random numbers."""
    run = run or (lambda s, n, seed: simulate(s, n, seed))
    seed = scenario.seed if options.seed is None else options.seed
    confirm_seed = seed + 1 if options.confirm_seed is None else options.confirm_seed
    simulations = Simulations(scenario, catalogue, options, seed, run, on_simulated)
    valuation = value_catalogue(simulations)
    began = time.perf_counter()
    model = build_model(valuation, catalogue, options)
    result = solve(model, SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap), build_seconds=time.perf_counter() - began)
    if not result.has_solution:
        return AutomationReport(valuation, result, None, None, None, seed=seed, confirm_seed=confirm_seed)
    check = check_portfolios(model, read_portfolio(model), simulations, options)
    portfolio = check.checked[check.chosen].portfolio
    confirm = Simulations(scenario, catalogue, options, confirm_seed, run)
    chosen = confirm.outcome(portfolio.starts)
    kpis = {kpi: {"without": confirm.outcome({}).kpis[kpi], "with": chosen.kpis[kpi]} for kpi in KPIS}
    return AutomationReport(
        valuation, result, portfolio, apply_portfolio(scenario, catalogue, portfolio.starts),
        confirm.value(portfolio.starts), kpis, seed, confirm_seed, check,
        simulations.replications_run, simulations.replications_saved,
    )
