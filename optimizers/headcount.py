"""Headcount planning: the cheapest hiring plan that reaches a bookings target with the asked probability.

A mixed-integer model (Pyomo, solved by HiGHS) chooses whole requisitions per role, territory and month. It plans
with expectations (``headcount_data``): cohorts that ramp, leave and are backfilled; first-touch hours and
opportunity slots that turn into expected bookings. The plan is then simulated; while too few replications reach
the target, the model's target is raised by the shortfall at the asked quantile and solved again.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

import numpy as np
import pyomo.environ as pyo
from scipy import stats

from engine import Results, simulate
from optimizers.headcount_data import HeadcountData, headcount_data
from optimizers.solve import SolveOptions, SolveResult, solve
from scenarios import Scenario, validate_scenario
from scenarios.model import spread

Simulator = Callable[[Scenario, int, int], Results]


@dataclass(frozen=True)
class HeadcountOptions:
    """What to plan for and how hard to try.

    ``max_utilization`` keeps the plan from counting on reps being busy every minute (queues explode near 100%);
    ``planning_response_hours`` is the response time the plan assumes when it discounts conversion for waiting.
    """

    target_bookings: float | None
    confidence: float = 0.8
    budget: float | None = None
    objective: Literal["cost", "margin"] = "cost"
    gross_margin: float = 1.0
    max_utilization: float = 0.85
    planning_response_hours: float = 8.0
    replications: int = 40
    seed: int | None = None
    max_iterations: int = 8
    time_limit: float | None = 30.0
    rel_gap: float = 0.01


# ----- the model: a pure function of the data, made of small steps -----


def build_model(
    data: HeadcountData,
    options: HeadcountOptions,
    scenario: Scenario,
    target_scale: float = 1.0,
    extra_slot: tuple[str, str] | None = None,
) -> pyo.ConcreteModel:
    """The headcount MIP for the data; ``target_scale`` raises the bookings target (the simulation correction) and
    ``extra_slot`` (role, month) allows one more requisition there than recruiting capacity does."""
    model = pyo.ConcreteModel(name="headcount")
    add_sets(model, data)
    add_hires(model, data, scenario, extra_slot)
    add_staffing(model, data)
    add_first_touch(model, data, options)
    add_opportunities(model, data, options)
    add_planning_limits(model, data, scenario, extra_slot)
    add_managers(model, data, scenario)
    add_cost(model, data, scenario)
    add_objective(model, data, options, target_scale)
    return model


def add_sets(model: pyo.ConcreteModel, data: HeadcountData) -> None:
    model.roles = pyo.Set(initialize=data.roles, ordered=True)
    model.territories = pyo.Set(initialize=data.territories, ordered=True)
    model.segments = pyo.Set(initialize=data.segments, ordered=True)
    model.months = pyo.Set(initialize=data.months, ordered=True)


def _recruiting_capacity(scenario: Scenario, role: str, month: str, extra_slot: tuple[str, str] | None) -> int | None:
    cap = scenario.roles[role].max_hires_per_month
    return None if cap is None else cap + (1 if extra_slot == (role, month) else 0)


def add_hires(model: pyo.ConcreteModel, data: HeadcountData, scenario: Scenario, extra_slot: tuple[str, str] | None) -> None:
    """Requisitions: at least what the scenario already commits to, none whose start falls past the horizon."""
    index = _indexer(data)

    def bounds(_, role, territory, month):  # noqa: ANN001, ANN202
        r, t, m = index.role[role], index.territory[territory], index.month[month]
        committed = data.committed[r, t, m]
        if m + data.lags[role] >= data.horizon:
            return (committed, committed)
        cap = _recruiting_capacity(scenario, role, month, extra_slot)
        return (committed, max(committed, cap) if cap is not None else None)

    model.hire = pyo.Var(model.roles, model.territories, model.months, domain=pyo.NonNegativeIntegers, bounds=bounds)
    for var in model.hire.values():
        if var.lb == var.ub:  # requisitions that would start past the horizon: kept as committed, not decided
            var.fix(var.lb)


def add_staffing(model: pyo.ConcreteModel, data: HeadcountData) -> None:
    """Expected reps on staff, ramped capacity, headcount at month end and hires paid, from veterans and hires."""
    index = _indexer(data)

    def kernel_sum(kind: str):  # noqa: ANN202
        def rule(m, role, territory, month):  # noqa: ANN001, ANN202
            r, t, k = index.role[role], index.territory[territory], index.month[month]
            veterans = data.veterans[r, t] * getattr(data.veteran_cohorts[role], kind)[k]
            kernel = getattr(data.cohorts[role], kind)
            lag = data.lags[role]
            return veterans + sum(
                m.hire[role, territory, data.months[j]] * kernel[k - j - lag] for j in range(0, k - lag + 1)
            )
        return rule

    for kind in ("staffed", "ramped", "at_month_end", "hires"):
        setattr(model, kind, pyo.Expression(model.roles, model.territories, model.months, rule=kernel_sum(kind)))


def add_first_touch(model: pyo.ConcreteModel, data: HeadcountData, options: HeadcountOptions) -> None:
    """MQLs touched are bounded by demand (inbound plus prospecting) and by first-touch hours."""
    index = _indexer(data)
    first = data.roles[0]
    model.touched = pyo.Var(model.segments, model.territories, model.months, domain=pyo.NonNegativeReals)

    def demand(m, segment, territory, month):  # noqa: ANN001, ANN202
        g, t, k = index.segment[segment], index.territory[territory], index.month[month]
        return m.touched[segment, territory, month] <= (
            data.inbound_mql[g, t, k] + data.outbound_mql[g, k] * m.ramped[first, territory, month]
        )

    def hours(m, territory, month):  # noqa: ANN001, ANN202
        k = index.month[month]
        work = data.handling_hours[k] * sum(m.touched[g, territory, month] for g in m.segments)
        return work <= options.max_utilization * data.first_touch_hours[k] * m.ramped[first, territory, month]

    model.mql_demand = pyo.Constraint(model.segments, model.territories, model.months, rule=demand)
    model.first_touch_hours = pyo.Constraint(model.territories, model.months, rule=hours)


def add_opportunities(model: pyo.ConcreteModel, data: HeadcountData, options: HeadcountOptions) -> None:
    """SQLs accepted hold opportunity slots until they close; slots come from ramped opportunity reps."""
    index = _indexer(data)
    owner = data.roles[1]
    model.accepted = pyo.Var(model.segments, model.territories, model.months, domain=pyo.NonNegativeReals)

    def sqls(m, segment, territory, month):  # noqa: ANN001, ANN202
        return m.accepted[segment, territory, month] <= data.sql_yield[index.segment[segment]] * m.touched[segment, territory, month]

    def slots(m, territory, month):  # noqa: ANN001, ANN202
        k = index.month[month]
        held = sum(
            m.accepted[g, territory, data.months[j]] * data.funnels[g].holding[k - j]
            for g in m.segments for j in range(k + 1)
        )
        return held <= options.max_utilization * data.slots_per_rep[k] * m.ramped[owner, territory, month]

    def bookings(m, month):  # noqa: ANN001, ANN202
        k = index.month[month]
        return sum(
            m.accepted[g, t, data.months[j]] * data.funnels[g].bookings[k - j]
            for g in m.segments for t in m.territories for j in range(k + 1)
        )

    model.sql_supply = pyo.Constraint(model.segments, model.territories, model.months, rule=sqls)
    model.opportunity_slots = pyo.Constraint(model.territories, model.months, rule=slots)
    model.bookings = pyo.Expression(model.months, rule=bookings)


def add_planning_limits(model: pyo.ConcreteModel, data: HeadcountData, scenario: Scenario, extra_slot: tuple[str, str] | None) -> None:
    """Recruiting capacity per month and headcount floors and ceilings, per role."""

    def hires(m, role, month):  # noqa: ANN001, ANN202
        cap = _recruiting_capacity(scenario, role, month, extra_slot)
        return pyo.Constraint.Skip if cap is None else sum(m.hire[role, t, month] for t in m.territories) <= cap

    def headcount(m, role, month):  # noqa: ANN001, ANN202
        return sum(m.at_month_end[role, t, month] for t in m.territories)

    def floor(m, role, month):  # noqa: ANN001, ANN202
        minimum = scenario.roles[role].min_headcount
        return headcount(m, role, month) >= minimum if minimum else pyo.Constraint.Skip

    def ceiling(m, role, month):  # noqa: ANN001, ANN202
        maximum = scenario.roles[role].max_headcount
        return pyo.Constraint.Skip if maximum is None else headcount(m, role, month) <= maximum

    model.recruiting_capacity = pyo.Constraint(model.roles, model.months, rule=hires)
    model.headcount_floor = pyo.Constraint(model.roles, model.months, rule=floor)
    model.headcount_ceiling = pyo.Constraint(model.roles, model.months, rule=ceiling)


def add_managers(model: pyo.ConcreteModel, data: HeadcountData, scenario: Scenario) -> None:
    """Managers per month, enough for the span of control over the roles they manage.

    Their number is left fractional: the plan's reps are expectations anyway, and whole managers multiply the
    solve time several times over for a cost difference the simulation reports exactly.
    """
    derived = [name for name, role in scenario.roles.items() if role.span_of_control is not None]
    model.manager_roles = pyo.Set(initialize=derived, ordered=True)
    model.managers = pyo.Var(model.manager_roles, model.months, domain=pyo.NonNegativeReals)

    def span(m, manager, month):  # noqa: ANN001, ANN202
        role = scenario.roles[manager]
        managed = 0
        for name in role.manages:
            if name in data.roles:
                managed += sum(m.at_month_end[name, t, month] for t in m.territories)
            else:
                managed += sum(scenario.roles[name].headcount.values())
        return m.managers[manager, month] * role.span_of_control >= managed

    model.span_of_control = pyo.Constraint(model.manager_roles, model.months, rule=span)


def add_cost(model: pyo.ConcreteModel, data: HeadcountData, scenario: Scenario) -> None:
    index = _indexer(data)

    def monthly(m, month):  # noqa: ANN001, ANN202
        reps = sum(
            scenario.roles[r].salary_monthly * m.staffed[r, t, month] + scenario.roles[r].hiring_cost * m.hires[r, t, month]
            for r in m.roles for t in m.territories
        )
        managers = sum(scenario.roles[d].salary_monthly * m.managers[d, month] for d in m.manager_roles)
        return reps + managers + float(data.fixed_cost[index.month[month]])

    model.cost = pyo.Expression(model.months, rule=monthly)
    model.total_cost = pyo.Expression(expr=sum(model.cost[month] for month in model.months))


def add_objective(model: pyo.ConcreteModel, data: HeadcountData, options: HeadcountOptions, target_scale: float) -> None:
    total_bookings = sum(model.bookings[month] for month in model.months)
    if options.target_bookings is not None:
        model.bookings_target = pyo.Constraint(expr=total_bookings >= options.target_bookings * target_scale)
    if options.budget is not None:
        model.budget = pyo.Constraint(expr=model.total_cost <= options.budget)
    if options.objective == "cost":
        model.objective = pyo.Objective(expr=model.total_cost, sense=pyo.minimize)
    else:
        model.objective = pyo.Objective(expr=options.gross_margin * total_bookings - model.total_cost, sense=pyo.maximize)


@dataclass(frozen=True)
class _Index:
    role: dict[str, int]
    territory: dict[str, int]
    segment: dict[str, int]
    month: dict[str, int]


def _indexer(data: HeadcountData) -> _Index:
    return _Index(*({name: i for i, name in enumerate(names)} for names in (data.roles, data.territories, data.segments, data.months)))


# ----- reading a solved model back, in one place -----


@dataclass(frozen=True)
class Plan:
    """Requisitions by (role, territory, month label), and the model's own view of the plan."""

    hires: dict[tuple[str, str, str], int]
    expected_bookings: float
    expected_cost: float
    headcount: dict[str, list[float]]  # expected headcount at month end, per role

    def rows(self) -> list[dict[str, object]]:
        return [
            {"month": month, "role": role, "territory": territory, "hires": count}
            for (role, territory, month), count in sorted(self.hires.items(), key=lambda item: (item[0][2], item[0][0], item[0][1]))
            if count
        ]

    def total(self, role: str) -> int:
        return sum(count for (r, _, _), count in self.hires.items() if r == role)


def read_plan(model: pyo.ConcreteModel) -> Plan:
    hires = {key: int(round(pyo.value(var))) for key, var in model.hire.items()}
    headcount = {
        role: [sum(pyo.value(model.at_month_end[role, t, month]) for t in model.territories) for month in model.months]
        for role in model.roles
    }
    return Plan(
        hires=hires,
        expected_bookings=float(sum(pyo.value(model.bookings[month]) for month in model.months)),
        expected_cost=float(pyo.value(model.total_cost)),
        headcount=headcount,
    )


def apply_plan(scenario: Scenario, hires: dict[tuple[str, str, str], int]) -> Scenario:
    """The scenario with the plan as its hiring plan (replacing what it had), validated again."""
    data = scenario.model_dump(mode="json")
    plans: dict[str, dict[str, dict[str, int]]] = {}
    for (role, territory, month), count in sorted(hires.items()):
        if count:
            plans.setdefault(role, {}).setdefault(month, {})[territory] = count
    for role in {role for role, _, _ in hires}:
        data["roles"][role]["hiring_plan"] = plans.get(role, {})
    data["name"] = f"{scenario.name} with hiring plan"
    data["description"] = f"{scenario.description} Hiring plan applied.".strip()
    return validate_scenario(data, data["name"])


# ----- the plan checked and corrected by simulation -----


@dataclass(frozen=True)
class Check:
    """A plan simulated: the share of replications reaching the target, with a 95% Wilson interval."""

    probability: float
    interval: tuple[float, float]
    bookings: dict[str, float]  # p10, p50, p90 of total bookings
    cost: dict[str, float]
    replications: int


def check_plan(scenario: Scenario, target: float | None, replications: int, seed: int, run: Simulator) -> tuple[Check, np.ndarray]:
    results = run(scenario, replications, seed)
    totals = results.monthly.groupby("replication")[["bookings", "cost"]].sum()
    bookings = totals["bookings"].to_numpy()
    reached = int((bookings >= target).sum()) if target is not None else replications
    return Check(
        probability=reached / replications,
        interval=_wilson(reached, replications),
        bookings=_quantiles(bookings),
        cost=_quantiles(totals["cost"].to_numpy()),
        replications=replications,
    ), bookings


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (10, 50, 90)} | {"mean": float(values.mean())}


def _wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Iteration:
    target_scale: float
    solve: SolveResult
    check: Check | None
    expected_bookings: float | None
    expected_cost: float | None


@dataclass(frozen=True)
class HeadcountReport:
    """Everything the headcount planner found: the plan, the scenario it makes, the iterations and why."""

    status: Literal["met", "not_met", "infeasible", "no_solution"]
    message: str
    plan: Plan | None
    scenario: Scenario | None
    iterations: list[Iteration]
    binding: list[str] = field(default_factory=list)
    marginal_values: list[dict[str, object]] = field(default_factory=list)
    naive: dict[str, object] | None = None


def plan_headcount(scenario: Scenario, options: HeadcountOptions, run: Simulator | None = None) -> HeadcountReport:
    """Solve, simulate, and raise the model's target until the asked share of replications reaches the target."""
    run = run or (lambda s, n, seed: simulate(s, n, seed))
    seed = scenario.seed if options.seed is None else options.seed
    data = headcount_data(scenario, options.planning_response_hours)
    solve_options = SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap)
    iterations: list[Iteration] = []
    scale, model, plan, planned = 1.0, None, None, None
    for _ in range(options.max_iterations):
        began = time.perf_counter()
        model = build_model(data, options, scenario, scale)
        result = solve(model, solve_options, build_seconds=time.perf_counter() - began)
        if not result.has_solution:
            iterations.append(Iteration(scale, result, None, None, None))
            return _unsolved(result, iterations, plan, planned, scale)
        plan = read_plan(model)
        planned = apply_plan(scenario, plan.hires)
        check, bookings = check_plan(planned, options.target_bookings, options.replications, seed, run)
        iterations.append(Iteration(scale, result, check, plan.expected_bookings, plan.expected_cost))
        if options.target_bookings is None or check.probability >= options.confidence:
            break
        shortfall = options.target_bookings / max(float(np.quantile(bookings, 1 - options.confidence)), 1e-9)
        scale *= max(shortfall, 1.02)
    met = options.target_bookings is None or iterations[-1].check.probability >= options.confidence
    message = (
        f"the plan reaches the target in {iterations[-1].check.probability:.0%} of {options.replications} replications"
        if options.target_bookings is not None else "the plan maximises the expected margin"
    )
    if not met:
        message += f", short of the asked {options.confidence:.0%} after {len(iterations)} iterations"
    return HeadcountReport(
        status="met" if met else "not_met",
        message=message,
        plan=plan,
        scenario=planned,
        iterations=iterations,
        binding=binding_constraints(model),
        marginal_values=marginal_values(data, options, scenario, scale, solve_options),
        naive=naive_plan(scenario, data, options, seed, run),
    )


def _unsolved(result: SolveResult, iterations: list[Iteration], plan: Plan | None, planned: Scenario | None, scale: float) -> HeadcountReport:
    if result.status == "infeasible":
        what = "the target cannot be reached" if scale == 1.0 else f"the target raised by {scale - 1:.0%} for safety cannot be reached"
        why = describe_constraints(result.infeasibility.constraints) if result.infeasibility else "the model is infeasible"
        return HeadcountReport("infeasible", f"{what}; these limits conflict: {why}", plan, planned, iterations)
    return HeadcountReport("no_solution", f"no plan found ({result.termination}) within the limits", plan, planned, iterations)


#: Constraint families in the user's words, with the scenario key or option that relaxes them.
_FAMILIES = {
    "bookings_target": ("the bookings target", "--target-bookings"),
    "budget": ("the budget", "--budget"),
    "recruiting_capacity": ("recruiting capacity", "roles.<role>.max_hires_per_month"),
    "headcount_ceiling": ("headcount ceiling", "roles.<role>.max_headcount"),
    "headcount_floor": ("headcount floor", "roles.<role>.min_headcount"),
    "span_of_control": ("span of control", "roles.<manager>.span_of_control"),
    "first_touch_hours": ("first-touch hours", "more first-touch reps or --max-utilization"),
    "opportunity_slots": ("opportunity slots", "more opportunity reps or open_opportunity_limit"),
    "mql_demand": ("all MQLs worked (the market is the limit)", "more leads: lead_sources"),
    "sql_supply": ("all SQLs accepted", "funnel.sql_rate"),
}


def describe_constraints(names: list[str] | tuple[str, ...]) -> str:
    """Constraint names grouped by family in the user's terms, e.g. ``recruiting capacity: ae in 2027-01, 2027-02
    (relax: roles.<role>.max_hires_per_month)``; families the user cannot change are summarised by count."""
    groups: dict[str, list[str]] = {}
    for name in names:
        family, _, index = name.partition("[")
        groups.setdefault(family, []).append(index.rstrip("]").replace(",", " in ", 1) if index else "")
    parts = []
    for family, members in groups.items():
        words, relax = _FAMILIES.get(family, (family, None))
        members = [m for m in members if m]
        where = (": " + ", ".join(members[:12]) + (f" and {len(members) - 12} more" if len(members) > 12 else "")) if members else ""
        if family in ("mql_demand", "sql_supply", "first_touch_hours", "opportunity_slots") and len(members) > 3:
            where = f" ({len(members)} territory-months)"
        if relax and "<role>" in relax:
            roles = sorted({member.split(" in ")[0] for member in members})
            relax = ", ".join(relax.replace("<role>", role) for role in roles)
        parts.append(f"{words}{where}" + (f" (relax: {relax})" if relax else ""))
    return "; ".join(parts)


def binding_constraints(model: pyo.ConcreteModel, tolerance: float = 1e-6) -> list[str]:
    """Planning limits and capacities that hold with no slack in the plan, by name."""
    names = []
    for family in ("bookings_target", "budget", "recruiting_capacity", "headcount_ceiling", "headcount_floor", "first_touch_hours", "opportunity_slots"):
        component = getattr(model, family, None)
        if component is None:
            continue
        for con in component.values():
            body = pyo.value(con.body)
            scale = max(1.0, abs(body))
            if (con.has_ub() and abs(pyo.value(con.upper) - body) <= tolerance * scale) or (
                con.has_lb() and abs(body - pyo.value(con.lower)) <= tolerance * scale
            ):
                names.append(con.name)
    return describe_constraints(names).split("; ") if names else []


def marginal_values(
    data: HeadcountData, options: HeadcountOptions, scenario: Scenario, scale: float, solve_options: SolveOptions
) -> list[dict[str, object]]:
    """What one more hire slot would save (cost objective) or earn (margin objective) in each month where
    recruiting capacity binds, from re-solves of the linear relaxation (fast, and free of integer noise)."""
    def relaxed(extra_slot: tuple[str, str] | None) -> pyo.ConcreteModel:
        model = build_model(data, options, scenario, scale, extra_slot)
        pyo.TransformationFactory("core.relax_integer_vars").apply_to(model)
        return model

    base_model = relaxed(None)
    base = solve(base_model, solve_options)
    if not base.has_solution:
        return []
    values = []
    for role in data.roles:
        cap = scenario.roles[role].max_hires_per_month
        for month in data.months if cap is not None else []:
            hired = sum(pyo.value(base_model.hire[role, t, month]) for t in data.territories)
            if hired < cap - 1e-6:
                continue
            result = solve(relaxed((role, month)), solve_options)
            if result.has_solution:
                gain = base.objective - result.objective if options.objective == "cost" else result.objective - base.objective
                values.append({"role": role, "month": month, "value": round(float(gain), 2)})
    return values


def naive_plan(scenario: Scenario, data: HeadcountData, options: HeadcountOptions, seed: int, run: Simulator) -> dict[str, object] | None:
    """The spreadsheet plan, simulated: target ÷ what one fully ramped opportunity rep books today, hired at once
    in the first month (on top of the hires the scenario already commits to), first-touch reps in today's ratio;
    next to the scenario as it is. None when there is nothing to divide by (no opportunity reps or no bookings)."""
    if options.target_bookings is None:
        return None
    today, _ = check_plan(scenario, options.target_bookings, options.replications, seed, run)
    first, owner = data.roles
    current = data.veterans.sum(axis=1)
    if current[1] == 0 or today.bookings["mean"] <= 0:
        return {"today": asdict(today), "naive_hires": None, "naive": None}
    per_owner_month = today.bookings["mean"] / (current[1] * data.horizon)
    needed = math.ceil(options.target_bookings / (per_owner_month * data.horizon))
    extra_owners = max(0, needed - int(current[1]))
    extra_first = math.ceil(extra_owners * current[0] / current[1])
    weights = {t: spec.lead_share for t, spec in scenario.territories.items()}
    hires = {
        (role, territory, month): int(data.committed[r, t, m])
        for r, role in enumerate(data.roles) for t, territory in enumerate(data.territories)
        for m, month in enumerate(data.months)
    }
    for role, extra in ((first, extra_first), (owner, extra_owners)):
        for territory, count in spread(extra, weights).items():
            hires[(role, territory, data.months[0])] += count
    naive, _ = check_plan(apply_plan(scenario, hires), options.target_bookings, options.replications, seed, run)
    return {
        "today": asdict(today),
        "naive_hires": {first: extra_first, owner: extra_owners, "month": data.months[0]},
        "naive": asdict(naive),
    }
