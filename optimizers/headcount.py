"""Headcount planning: the cheapest hiring plan that reaches a bookings target with the asked probability.

A mixed-integer model (Pyomo, solved by HiGHS) chooses whole requisitions per role, territory and month. It plans
with expectations (``headcount_data``): cohorts that ramp, leave and are backfilled; first-touch hours and
opportunity slots that turn into expected bookings. The first-touch queue is part of the model: in each territory
and month, the share of MQLs' SQL conversion that survives the response-time decay is a concave piecewise-linear
function of the ramped first-touch reps, tabulated from Erlang C on the working clock and averaged over the spread
that attrition and backfills give the staffing (``response_hours``).

The plan is then simulated, and the model corrected: each month's queue load is rescaled so that the model's
response times for the plans simulated so far are the simulation's, and, once the two agree, while too few replications
reach the target, the model's target is raised by the shortfall at the asked quantile. A raised target the model
cannot reach is backed off (bisection between the highest scale solved and the lowest that was not). The best plan
simulated is returned, with its simulated probability, even when none reaches the asked one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Literal

import numpy as np
import pyomo.environ as pyo
from scipy import stats

from engine import Results, simulate
from optimizers.headcount_data import HeadcountData, erlang_c, headcount_data, shifted
from optimizers.solve import Infeasibility, SolveOptions, SolveResult, solve
from scenarios import Scenario, validate_scenario
from scenarios.model import ResponseDecay, spread

Simulator = Callable[[Scenario, int, int], Results]


@dataclass(frozen=True)
class HeadcountOptions:
    """What to plan for and how hard to try.

    ``max_utilization`` keeps the plan from counting on reps being busy every minute (queues explode near 100%);
    ``agreement`` is how close (relative) the model's horizon response time must come to the simulation's before
    the target is raised for safety: while they disagree, the queue is corrected first.
    """

    target_bookings: float | None
    confidence: float = 0.8
    budget: float | None = None
    objective: Literal["cost", "margin"] = "cost"
    gross_margin: float = 1.0
    max_utilization: float = 0.85
    agreement: float = 0.1
    replications: int = 40
    seed: int | None = None
    max_iterations: int = 12
    time_limit: float | None = 30.0
    rel_gap: float = 0.01


# ----- the model: a pure function of the data, made of small steps -----


def build_model(
    data: HeadcountData,
    options: HeadcountOptions,
    scenario: Scenario,
    target_scale: float = 1.0,
    extra_slot: tuple[str, str] | None = None,
    queue: QueueView | None = None,
) -> pyo.ConcreteModel:
    """The headcount MIP for the data; ``target_scale`` raises the bookings target (the simulation correction),
    ``extra_slot`` (role, month) allows one more requisition there than recruiting capacity does, and ``queue``
    is what the model assumes of the first-touch queue (default: the formula uncorrected, today's staffing)."""
    queue = queue or initial_queue(data)
    model = pyo.ConcreteModel(name="headcount")
    add_sets(model, data)
    add_hires(model, data, scenario, extra_slot)
    add_staffing(model, data)
    add_first_touch(model, data, options)
    add_opportunities(model, data, options)
    add_queue(model, data, scenario, queue)
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


def add_queue(model: pyo.ConcreteModel, data: HeadcountData, scenario: Scenario, queue: QueueView) -> None:
    """SQLs are what the response-time decay leaves of the MQLs' conversion: ``answered[t, k]``, the share that
    survives the wait, is bounded by the concave envelope of its value at tabulated ramped first-touch reps. MQLs ×
    answered is bilinear where reps prospect (outbound MQLs grow with them), so it is linearised around the queue
    view's staffing: its MQLs × answered, plus the outbound MQLs a different staffing brings at the view's answered
    share (exact at the view's staffing, and a plan with more prospectors is credited with their MQLs)."""
    decay = scenario.funnel.response_decay
    if decay is None:
        return
    index = _indexer(data)
    first = data.roles[0]
    demand = mql_demand(data, queue.ramped)
    answered_at_view = answered_share(data, queue, queue.ramped, decay)
    lines = {(data.territories[t], data.months[k]): edges for (t, k), edges in queue_envelopes(data, queue, decay).items()}
    rows = [(t, k, j) for (t, k), edges in lines.items() for j in range(len(edges))]
    model.answered = pyo.Var(model.territories, model.months, bounds=(0.0, 1.0))
    model.queue_envelope = pyo.Constraint(
        pyo.Set(initialize=rows, dimen=3, ordered=True),
        rule=lambda m, t, k, j: m.answered[t, k] <= lines[t, k][j][1] + lines[t, k][j][0] * m.ramped[first, t, k],
    )

    def answered_sqls(m, segment, territory, month):  # noqa: ANN001, ANN202
        g, t, k = index.segment[segment], index.territory[territory], index.month[month]
        more_outbound = data.outbound_mql[g, k] * (m.ramped[first, territory, month] - queue.ramped[t, k])
        return m.accepted[segment, territory, month] <= data.sql_yield[g] * (
            demand[g, t, k] * m.answered[territory, month] + answered_at_view[t, k] * more_outbound
        )

    model.queue_sqls = pyo.Constraint(model.segments, model.territories, model.months, rule=answered_sqls)


def add_opportunities(model: pyo.ConcreteModel, data: HeadcountData, options: HeadcountOptions) -> None:
    """SQLs accepted hold opportunity slots until they close; slots come from ramped opportunity reps."""
    index = _indexer(data)
    owner = data.roles[1]
    model.accepted = pyo.Var(model.segments, model.territories, model.months, domain=pyo.NonNegativeReals)

    def sqls(m, segment, territory, month):  # noqa: ANN001, ANN202
        return m.accepted[segment, territory, month] <= data.sql_yield[index.segment[segment]] * m.touched[segment, territory, month]

    def slots(m, territory, month):  # noqa: ANN001, ANN202
        k = index.month[month]
        held = data.carried_slots[index.territory[territory], k] + sum(
            m.accepted[g, territory, data.months[j]] * data.funnels[g].holding[k - j]
            for g in m.segments for j in range(k + 1)
        )
        return held <= options.max_utilization * data.slots_per_rep[k] * m.ramped[owner, territory, month]

    def bookings(m, month):  # noqa: ANN001, ANN202
        k = index.month[month]
        return data.carried_bookings[k] + sum(
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


# ----- the first-touch queue as the model sees it -----

#: Utilisations of the first-touch reps at which the queue's effect on conversion is tabulated for the model.
UTILIZATION_GRID = (0.99, 0.97, 0.95, 0.93, 0.91, 0.89, 0.87, 0.85, 0.82, 0.79, 0.76, 0.72, 0.68, 0.63, 0.57, 0.5, 0.4, 0.3, 0.2)
#: Load factors tried when fitting the per-month correction of the queue to the simulations.
LOAD_FACTORS = np.round(np.arange(0.5, 2.0001, 0.01), 2)


#: Probabilists' Gauss–Hermite nodes and weights over which the queue is averaged across the staffing's spread.
STAFFING_NODES, STAFFING_WEIGHTS = np.polynomial.hermite_e.hermegauss(9)
STAFFING_WEIGHTS = STAFFING_WEIGHTS / STAFFING_WEIGHTS.sum()


@dataclass(frozen=True)
class QueueView:
    """What the model assumes of the first-touch queue: per month, the factor by which the simulated queue behaves
    as if loaded more (or less) than the formula's offered load (1 before any simulation); the ramped first-touch
    reps per territory and month that the outbound MQL demand is reckoned with (the last plan's); and the variance
    of those reps per ramped rep (``dispersion``), from attrition and backfills, that the queue is averaged over."""

    load_factor: np.ndarray  # (month)
    ramped: np.ndarray  # (territory, month)
    dispersion: np.ndarray  # (territory, month)


def first_touch_staffing(data: HeadcountData, hires: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The expected ramped first-touch reps by territory and month, and their variance, from the reps on staff and
    ``hires`` (territory, month: requisitions, committed ones included); slots fill and empty independently."""
    role = data.roles[0]
    lag, veteran, hire = data.lags[role], data.veteran_cohorts[role], data.cohorts[role]
    mean, variance = data.veterans[0][:, None] * veteran.ramped[None, :], data.veterans[0][:, None] * veteran.ramped_variance[None, :]
    for t, j in zip(*np.nonzero(hires)):
        mean[t] += hires[t, j] * shifted(hire.ramped, j + lag)
        variance[t] += hires[t, j] * shifted(hire.ramped_variance, j + lag)
    return mean, variance


def queue_for_staffing(data: HeadcountData, hires: np.ndarray, load_factor: np.ndarray) -> QueueView:
    """The queue view of a staffing: its ramped reps and their spread, with the given load factors."""
    ramped, variance = first_touch_staffing(data, hires)
    return QueueView(load_factor, ramped, np.divide(variance, ramped, out=np.zeros_like(ramped), where=ramped > 1e-9))


def initial_queue(data: HeadcountData) -> QueueView:
    """The formula as it is, with the first-touch staffing the scenario already has and plans."""
    return queue_for_staffing(data, data.committed[0], np.ones(data.horizon))


def mql_demand(data: HeadcountData, ramped: np.ndarray) -> np.ndarray:
    """Expected MQLs by segment, territory and month, with ``ramped`` first-touch reps prospecting."""
    return data.inbound_mql + data.outbound_mql[:, None, :] * ramped[None, :, :]


def over_staffing(queue: QueueView, ramped: np.ndarray, at: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The mean of ``at(reps)`` when the ramped first-touch reps are ``ramped`` on average and spread as the queue
    view says (normal, variance ``dispersion × ramped``): a queue is convex in its servers, so a territory a rep
    short half the time waits far longer than one always half a rep short."""
    spread = np.sqrt(queue.dispersion * np.maximum(ramped, 0.0))
    return sum(w * at(np.maximum(ramped + x * spread, 0.0)) for x, w in zip(STAFFING_NODES, STAFFING_WEIGHTS))


def queue_waits(data: HeadcountData, queue: QueueView, ramped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """By territory and month with ``ramped`` first-touch reps: the probability that an MQL queues for a rep, and
    the mean calendar hours (as the lead feels them) that those who queue wait, from Erlang C on the working clock.
    Where the load reaches the reps, the queue is taken at 99% utilisation (finite, and long); the load is the
    queue view's, corrected by its factor."""
    servers = np.maximum(ramped, 1e-6)
    waiting, wait = erlang_c(servers, np.minimum(offered_load(data, queue), UTILIZATION_GRID[0] * servers))
    return waiting, data.felt_wait * data.calendar_per_working_hour * data.service_hours * wait


def response_hours(data: HeadcountData, queue: QueueView, ramped: np.ndarray) -> np.ndarray:
    """Mean response time (calendar hours, as the lead feels it) by territory and month with ``ramped`` first-touch
    reps on average: the wait for the next opening, plus the queue's over the staffing's spread."""
    def queued(reps: np.ndarray) -> np.ndarray:
        waiting, wait = queue_waits(data, queue, reps)
        return waiting * wait
    return data.felt_wait * float(data.off_hours_waits @ data.off_hours_weights) + over_staffing(queue, ramped, queued)


def answered_share(data: HeadcountData, queue: QueueView, ramped: np.ndarray, decay: ResponseDecay) -> np.ndarray:
    """The response-time decay's multiplier averaged over the wait distribution, by territory and month: the wait
    for the next opening, then no queue (probability 1 − P) or an exponential wait. The mean response time alone
    would not do: the decay is convex, and a long queue's few very long waits weigh little on conversion. Averaged
    over the staffing's spread around ``ramped``."""
    rate = math.log(2.0) / decay.half_life_hours
    opening = 0.5 ** (np.outer(data.felt_wait, data.off_hours_waits) / decay.half_life_hours) @ data.off_hours_weights

    def surviving(reps: np.ndarray) -> np.ndarray:
        waiting, wait = queue_waits(data, queue, reps)
        return 1.0 - waiting + waiting / (1.0 + wait * rate)
    return decay.floor + (1.0 - decay.floor) * opening * over_staffing(queue, ramped, surviving)


def offered_load(data: HeadcountData, queue: QueueView) -> np.ndarray:
    """First-touch work offered, in fully ramped reps, by territory and month, corrected by the month's factor."""
    return queue.load_factor * mql_demand(data, queue.ramped).sum(axis=0) * data.handling_hours / data.first_touch_hours


def queue_envelopes(data: HeadcountData, queue: QueueView, decay: ResponseDecay) -> dict[tuple[int, int], list[tuple[float, float]]]:
    """Per territory and month, (slope, intercept) of the lines whose minimum is the concave envelope of the share of
    conversion answered, as a function of ramped first-touch reps: tabulated at the utilisations of
    ``UTILIZATION_GRID``, with no reps at all answering at the decay's floor."""
    load = offered_load(data, queue)
    reps = np.maximum(load, 1e-6)[None, :, :] / np.asarray(UTILIZATION_GRID)[:, None, None]
    answered = answered_share(data, queue, reps, decay)
    envelopes = {}
    for t, k in np.ndindex(load.shape):
        if load[t, k] < 1e-6:  # no MQLs to wait: every one answered at the next opening
            envelopes[t, k] = [(0.0, float(answered[-1, t, k]))]
            continue
        points = [(0.0, decay.floor), *zip(reps[:, t, k], answered[:, t, k])]
        hull: list[tuple[float, float]] = []
        for point in points:  # the upper hull of points sorted by reps (Andrew's monotone chain)
            while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) >= 0:
                hull.pop()
            hull.append(point)
        edges = [((y1 - y0) / (x1 - x0), y0 - (y1 - y0) / (x1 - x0) * x0) for (x0, y0), (x1, y1) in zip(hull, hull[1:])]
        envelopes[t, k] = edges + [(0.0, hull[-1][1])]
    return envelopes


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def fit_errors(data: HeadcountData, staffing: QueueView, observed: np.ndarray) -> np.ndarray:
    """Per load factor of ``LOAD_FACTORS`` and month (rows, columns): the squared log-difference between the model's
    mean response time for a plan's first-touch ``staffing`` (weighted by territory MQLs) and its simulated mean
    ``observed`` by month (0 where NaN: nothing was touched). Every factor at once, once per plan simulated."""
    factors = np.broadcast_to(LOAD_FACTORS[:, None, None], (len(LOAD_FACTORS), 1, data.horizon))
    weights = np.maximum(mql_demand(data, staffing.ramped).sum(axis=0), 1e-12)
    model = (response_hours(data, replace(staffing, load_factor=factors), staffing.ramped) * weights).sum(axis=1) / weights.sum(axis=0)
    return np.where(np.isfinite(observed), (np.log(model) - np.log(np.maximum(observed, 1e-3))) ** 2, 0.0)


def corrected_queue(data: HeadcountData, fits: list[np.ndarray], staffing: QueueView) -> QueueView:
    """The queue fitted, month by month, to every plan simulated so far (``fits``: each plan's ``fit_errors``), with
    the last plan's ``staffing``. Each month's load factor minimises the summed squared log-difference between the
    model's mean response time and the simulation's over those plans, so that a staffing level simulated once does
    not make the model forget another, plus the squared log of the factor itself: a plan whose reps are seldom busy
    says little about the load (its waits are mostly nights and weekends), and must not move the factor far from 1.
    Outbound demand and the staffing's spread are reckoned with the last plan's."""
    errors = np.log(LOAD_FACTORS)[:, None] ** 2 + sum(fits)
    return replace(staffing, load_factor=LOAD_FACTORS[np.argmin(errors, axis=0)])


def model_response_hours(data: HeadcountData, queue: QueueView, ramped: np.ndarray) -> float:
    """The model's mean response time over the horizon, weighted by the MQLs of each territory and month."""
    return float(np.average(response_hours(data, queue, ramped), weights=mql_demand(data, ramped).sum(axis=0)))


# ----- reading a solved model back, in one place -----


@dataclass(frozen=True)
class Plan:
    """Requisitions by (role, territory, month label), and the model's own view of the plan."""

    hires: dict[tuple[str, str, str], int]
    expected_bookings: float
    expected_cost: float
    headcount: dict[str, list[float]]  # expected headcount at month end, per role
    first_touch_hires: np.ndarray = field(repr=False)  # (territory, month): first-touch requisitions, committed included

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
    first = model.roles.first()
    return Plan(
        hires=hires,
        expected_bookings=float(sum(pyo.value(model.bookings[month]) for month in model.months)),
        expected_cost=float(pyo.value(model.total_cost)),
        headcount=headcount,
        first_touch_hires=np.array([[pyo.value(model.hire[first, t, m]) for m in model.months] for t in model.territories]),
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
    """A plan simulated: the share of replications reaching the target, with a 95% Wilson interval, and what the
    model is checked against: bookings and the mean response time (horizon, and by month)."""

    probability: float
    interval: tuple[float, float]
    bookings: dict[str, float]  # p10, p50, p90 and mean of total bookings
    cost: dict[str, float]
    replications: int
    response_hours: float  # mean over replications of the horizon's mean response time
    response_hours_by_month: list[float] = field(repr=False)  # mean over replications; NaN where nothing was touched


def check_plan(scenario: Scenario, target: float | None, replications: int, seed: int, run: Simulator) -> tuple[Check, np.ndarray]:
    """Simulate a scenario; the check and every replication's total bookings."""
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
        response_hours=float(results.summary.loc["response_hours_mean", "mean"]),
        response_hours_by_month=results.monthly.groupby("month", sort=True)["response_hours_mean"].mean().tolist(),
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
    """One solve and, when it gave a plan, the plan simulated: the model's response time and bookings beside the
    simulation's, so that the user sees where they disagree."""

    target_scale: float
    solve: SolveResult
    check: Check | None
    expected_bookings: float | None
    expected_cost: float | None
    expected_response_hours: float | None = None

    def response_agrees(self, tolerance: float) -> bool:
        """Whether the model's mean response time is within ``tolerance`` (relative) of the simulation's."""
        if self.check is None or self.expected_response_hours is None:
            return False
        return abs(self.expected_response_hours - self.check.response_hours) <= tolerance * self.check.response_hours


@dataclass(frozen=True)
class HeadcountReport:
    """Everything the headcount planner found: the plan, the scenario it makes, the iterations and why.

    ``chosen`` is the iteration whose plan is returned: the cheapest simulated plan reaching the target with the
    asked probability, else the one reaching it most often. Its iteration shows the model as it was when it proposed
    the plan; ``final_model`` shows the model corrected by every simulation since, on the same plan.
    """

    status: Literal["met", "not_met", "infeasible", "no_solution"]
    message: str
    plan: Plan | None
    scenario: Scenario | None
    iterations: list[Iteration]
    binding: list[str] = field(default_factory=list)
    marginal_values: list[dict[str, object]] = field(default_factory=list)
    naive: dict[str, object] | None = None
    chosen: int | None = None
    final_model: dict[str, float] | None = None  # the model corrected by every simulation, on the plan returned

    @property
    def check(self) -> Check | None:
        """The returned plan's simulation."""
        return None if self.chosen is None else self.iterations[self.chosen].check


@dataclass
class _Tried:
    """A plan solved and simulated, with what the model it came from needs to be explained again."""

    iteration: int
    plan: Plan
    scenario: Scenario
    check: Check
    scale: float
    queue: QueueView
    model: pyo.ConcreteModel = field(repr=False)


def plan_headcount(scenario: Scenario, options: HeadcountOptions, run: Simulator | None = None) -> HeadcountReport:
    """Solve, simulate and correct until the model agrees with the simulation and the asked share of replications
    reaches the target; back off a raised target the model cannot reach; return the best plan simulated."""
    run = run or (lambda s, n, seed: simulate(s, n, seed))
    seed = scenario.seed if options.seed is None else options.seed
    data = headcount_data(scenario)
    queue = initial_queue(data)
    iterations: list[Iteration] = []
    tried: list[_Tried] = []
    fits: list[np.ndarray] = []  # per plan simulated, its fit_errors
    checked: dict[tuple, tuple[Check, np.ndarray]] = {}
    unreachable: SolveResult | None = None  # the first solve, when the model could not reach the target at all
    confirm_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    scale, bracket = 1.0, _Bracket()
    stalled = 0  # unmet plans in a row that had been simulated already: the scale moved too little to change them
    for _ in range(options.max_iterations):
        began = time.perf_counter()
        model = build_model(data, options, scenario, scale, queue=queue)
        solve_options = SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap, explain=not tried)
        result = solve(model, solve_options, build_seconds=time.perf_counter() - began)
        if not result.has_solution:
            iterations.append(Iteration(scale, result, None, None, None))
            first_infeasible = not tried and unreachable is None and result.status == "infeasible"
            reach = _reachable_scale(data, options, scenario, queue, solve_options) if first_infeasible else None
            if not tried and (result.status != "infeasible" or reach is None):
                return _unsolved(result, iterations, scale)
            if reach is not None:  # the model cannot reach the target: plan for the most it can, and simulate that
                unreachable, bracket.unsolved, scale = result, scale, reach
                continue
            if result.status != "infeasible":
                break
            bracket.unsolved = min(bracket.unsolved, scale)
            scale = bracket.inside(scale)  # back off towards the highest scale solved
            if scale is None:
                break
            continue
        plan = read_plan(model)
        planned = apply_plan(scenario, plan.hires)
        key = tuple(sorted(plan.hires.items()))
        repeated = key in checked
        if not repeated:  # a plan found again is not simulated again
            checked[key] = check_plan(planned, options.target_bookings, options.replications, seed, run)
            if options.target_bookings is not None and checked[key][0].probability >= options.confidence:
                # met: judged again on twice as many fresh replications, which decide, so that neither the luck of
                # the planning replications nor that of one sample among the plans tried chooses the plan
                checked[key] = check_plan(planned, options.target_bookings, CONFIRMING * options.replications, confirm_seed, run)
        check, bookings = checked[key]
        staffing = queue_for_staffing(data, plan.first_touch_hires, queue.load_factor)
        iteration = Iteration(
            scale, result, check, plan.expected_bookings, plan.expected_cost, model_response_hours(data, staffing, staffing.ramped),
        )
        iterations.append(iteration)
        tried.append(_Tried(len(iterations) - 1, plan, planned, check, scale, queue, model))
        fits.append(fit_errors(data, staffing, np.asarray(check.response_hours_by_month)))
        queue = corrected_queue(data, fits, staffing)
        if options.target_bookings is None:
            if iteration.response_agrees(options.agreement):
                break
            continue
        met = check.probability >= options.confidence
        quantile = max(float(np.quantile(bookings, 1 - options.confidence)), 1e-9)
        step = options.target_bookings / quantile  # the scale that would put the quantile on the target
        bracket.record(scale, met, len(fits), step)
        if not iteration.response_agrees(options.agreement) and not repeated:
            continue  # the queue corrected first, at the same target (a plan found again cannot correct it more)
        stalled = stalled + 1 if repeated and not met else 0
        least = 1 + SCALE_TOLERANCE * 2**stalled  # doubled while the plan stays the same, so a few steps change it
        proposed = bracket.inside(bracket.between() or scale * (max(step, least) if not met else step))
        if proposed is None and math.isfinite(bracket.met) and bracket.met_view < len(fits):
            proposed, bracket.met = bracket.met, math.inf  # met with a queue since corrected: solve it again
        if proposed is None:
            break
        scale = proposed
    return _report(scenario, data, options, tried, iterations, seed, run, queue, unreachable)


def _reachable_scale(
    data: HeadcountData, options: HeadcountOptions, scenario: Scenario, queue: QueueView, solve_options: SolveOptions
) -> float | None:
    """The share of the target that the most bookings the model can plan for make (a hair less, so that the cheapest
    plan for it is feasible); None when there is no target or no plan at all."""
    if options.target_bookings is None or options.target_bookings <= 0:
        return None
    most = replace(options, target_bookings=None, objective="margin", gross_margin=1e3)  # bookings first, cost breaks ties
    model = build_model(data, most, scenario, queue=queue)
    result = solve(model, replace(solve_options, explain=False))
    if not result.has_solution:
        return None
    return 0.999 * read_plan(model).expected_bookings / options.target_bookings


#: Fresh replications, per planning replication, that judge a plan whose planning replications met the target.
CONFIRMING = 2

#: Relative change of the target scale below which the planner stops adjusting it.
SCALE_TOLERANCE = 0.01


@dataclass
class _Bracket:
    """The scales tried so far: the lowest whose plan reached the target with the asked probability (and how many
    simulations the queue it was solved with had seen), the highest whose plan did not, and the lowest the model
    could not reach at all; with the step (target ÷ the asked quantile of simulated bookings) each plan asked for."""

    met: float = math.inf
    unmet: float = 0.0
    unsolved: float = math.inf
    met_view: int = 0
    met_step: float = math.nan
    unmet_step: float = math.nan

    def record(self, scale: float, met: bool, view: int, step: float) -> None:
        if met and scale <= self.met:
            self.met, self.met_view, self.met_step = scale, view, step
        elif not met and scale >= self.unmet:
            self.unmet, self.unmet_step = scale, step

    def between(self) -> float | None:
        """Once a plan has met the target and another has not: the scale where the step would be 1, by the secant
        of log-steps between the two (kept off either end by a fifth of the bracket, so that it always narrows);
        None before."""
        if not (math.isfinite(self.met) and self.unmet > 0 and self.met > self.unmet):
            return None
        low, high = math.log(max(self.unmet_step, 1.0)), math.log(min(self.met_step, 1.0))
        share = 0.5 if low - high <= 0 else low / (low - high)
        return self.unmet + (self.met - self.unmet) * min(max(share, 0.2), 0.8)

    def inside(self, proposed: float) -> float | None:
        """The proposed scale, or the middle of the bracket when it falls outside; None when the bracket is too
        narrow to try anything new."""
        low, high = self.unmet, min(self.met, self.unsolved)
        if high - low <= SCALE_TOLERANCE * max(low, 1e-9):
            return None
        return proposed if low < proposed < high else (low + high) / 2 if math.isfinite(high) else max(proposed, low * (1 + SCALE_TOLERANCE))


def _best(tried: list[_Tried], options: HeadcountOptions) -> _Tried:
    """The cheapest plan simulated that reaches the target with the asked probability, else the most likely to."""
    if options.target_bookings is None:
        return tried[-1]
    meeting = [t for t in tried if t.check.probability >= options.confidence]
    if meeting:
        return min(meeting, key=lambda t: t.check.cost["mean"])
    return max(tried, key=lambda t: (t.check.probability, -t.check.cost["mean"]))


def model_figures(data: HeadcountData, options: HeadcountOptions, scenario: Scenario, plan: Plan, queue: QueueView) -> dict[str, float]:
    """The model's expected bookings and mean response time for a plan under ``queue``: its hires fixed, the
    bookings are the most the model's funnel makes of them (an LP)."""
    model = build_model(data, replace(options, target_bookings=None, budget=None, objective="margin", gross_margin=1e3), scenario, queue=queue)
    for key, var in model.hire.items():
        var.fix(plan.hires[key])
    result = solve(model, SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap))
    staffing = queue_for_staffing(data, plan.first_touch_hires, queue.load_factor)
    return {
        "expected_bookings": float(sum(pyo.value(model.bookings[month]) for month in model.months)) if result.has_solution else math.nan,
        "expected_response_hours": model_response_hours(data, staffing, staffing.ramped),
    }


def _report(
    scenario: Scenario, data: HeadcountData, options: HeadcountOptions, tried: list[_Tried], iterations: list[Iteration],
    seed: int, run: Simulator, queue: QueueView, unreachable: SolveResult | None = None,
) -> HeadcountReport:
    best = _best(tried, options)
    met = options.target_bookings is None or best.check.probability >= options.confidence
    if options.target_bookings is None:
        message = "the plan maximises the expected margin"
    else:
        message = (
            f"the plan reaches the target in {best.check.probability:.0%} of {best.check.replications} replications"
            + ("" if met else f", short of the asked {options.confidence:.0%}: the best of {len(tried)} plans simulated in {len(iterations)} iterations")
        )
    status: Literal["met", "not_met", "infeasible"] = "met" if met else "not_met"
    if unreachable is not None and not met:
        status, message = "infeasible", f"{_unsolved(unreachable, [], 1.0).message}; {message}"
    solve_options = SolveOptions(time_limit=options.time_limit, rel_gap=options.rel_gap)
    return HeadcountReport(
        status=status,
        message=message,
        plan=best.plan,
        scenario=best.scenario,
        iterations=iterations,
        binding=binding_constraints(best.model),
        marginal_values=marginal_values(data, options, scenario, best.scale, solve_options, best.queue),
        naive=naive_plan(scenario, data, options, seed, run),
        chosen=best.iteration,
        final_model=model_figures(data, options, scenario, best.plan, queue),
    )


def _unsolved(result: SolveResult, iterations: list[Iteration], scale: float) -> HeadcountReport:
    if result.status == "infeasible":
        what = "the target cannot be reached" if scale == 1.0 else f"the target raised by {scale - 1:.0%} for safety cannot be reached"
        why = describe_constraints(conflict_names(result.infeasibility)) if result.infeasibility else "the model is infeasible"
        return HeadcountReport("infeasible", f"{what}; these limits conflict: {why}", None, None, iterations)
    return HeadcountReport("no_solution", f"no plan found ({result.termination}) within the limits", None, None, iterations)


#: Constraint families in the user's words, with the scenario key or option that relaxes them.
_FAMILIES = {
    "bookings_target": ("the bookings target", "--target-bookings"),
    "budget": ("the budget", "--budget"),
    "recruiting_capacity": ("recruiting capacity", "roles.<role>.max_hires_per_month"),
    "hire": ("recruiting capacity per territory", "roles.<role>.max_hires_per_month"),
    "headcount_ceiling": ("headcount ceiling", "roles.<role>.max_headcount"),
    "headcount_floor": ("headcount floor", "roles.<role>.min_headcount"),
    "span_of_control": ("span of control", "roles.<manager>.span_of_control"),
    "first_touch_hours": ("first-touch hours", "more first-touch reps or --max-utilization"),
    "opportunity_slots": ("opportunity slots", "more opportunity reps or open_opportunity_limit"),
    "mql_demand": ("all MQLs worked (the market is the limit)", "more leads: lead_sources"),
    "sql_supply": ("all SQLs accepted", "funnel.sql_rate"),
    "queue_sqls": ("SQLs the first-touch queue leaves (response-time decay)", "more first-touch reps"),
    "queue_envelope": ("first-touch queue", "more first-touch reps"),
}


def conflict_names(infeasibility: Infeasibility) -> list[str]:
    """The conflicting constraints, and the hire bounds among the conflicting variable bounds (recruiting capacity
    per territory sits in the bounds of the hires)."""
    return [*infeasibility.constraints, *(name for name in infeasibility.bounds if name.startswith("hire["))]


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
        if family in ("mql_demand", "sql_supply", "first_touch_hours", "opportunity_slots", "queue_sqls", "queue_envelope") and len(members) > 3:
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
    data: HeadcountData, options: HeadcountOptions, scenario: Scenario, scale: float, solve_options: SolveOptions,
    queue: QueueView | None = None,
) -> list[dict[str, object]]:
    """What one more hire slot would save (cost objective) or earn (margin objective) in each month where
    recruiting capacity binds, from re-solves of the linear relaxation (fast, and free of integer noise)."""
    def relaxed(extra_slot: tuple[str, str] | None) -> pyo.ConcreteModel:
        model = build_model(data, options, scenario, scale, extra_slot, queue)
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
