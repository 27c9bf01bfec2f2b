"""The expected-value picture of a scenario that the headcount model plans with.

Everything here is an expectation computed from the scenario alone, as plain arrays, so the model stays linear in
the hires: a cohort kernel says what one requisition (or one rep on staff today) brings month by month, with
ramp, attrition and the backfill chain; a funnel kernel says what one accepted SQL of a segment holds in
opportunity slots and books, month by month. Samples use a fixed seed, so the plan is deterministic.

The first-touch queue is seen through ``response_hours``: Erlang C on the reps' working clock (the mean wait of an
M/M/c queue with the territory-month's MQLs and ramped reps), converted to calendar hours, plus the wait of leads
arriving at night or at the weekend for the next opening, averaged over the spread of the ramped reps that
attrition and backfills leave (the cohorts' ``ramped_variance``). The planner rescales the offered load by a
per-month correction measured from the simulation, since backlogs carried from month to month and uneven arrivals
make the real queue differ from a steady-state formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.automation import adoption_by_month, away_share_by_month, lever_cost_by_month
from engine.calendar import WorkCalendar, month_starts, total_days_in_months
from engine.initial import carried_work
from engine.leads import daily_rate, stage_paths, territory_shares
from scenarios.model import DAYS_PER_MONTH, FollowUp, Role, Scenario, for_segment

#: Opportunity paths sampled per segment for the funnel kernels.
PATH_SAMPLES = 20_000
#: Tenure month standing for "on staff since before the start": fully ramped, long-run hazard.
VETERAN_TENURE = 10_000


@dataclass(frozen=True)
class Cohort:
    """Expected staffing, by month offset, from one rep starting at offset 0 and the reps that backfill them."""

    staffed: np.ndarray  # time-average reps on staff during each month (salaries)
    ramped: np.ndarray  # time-average fully ramped equivalents during each month (capacity)
    ramped_variance: np.ndarray  # the variance of ``ramped``: a slot is filled or vacant, and nobody knows which
    at_month_end: np.ndarray  # reps on staff at month end (headcount)
    hires: np.ndarray  # rep starts that cost a hire (backfills, and the first start unless a veteran)


def cohort(role: Role, horizon: int, veteran: bool) -> Cohort:
    """What one rep starting at month 0 (a new hire, or a rep already on staff) contributes over the horizon.

    The slot holds one rep at a time (a backfill starts after its predecessor has left), so the second moment of its
    ramped capacity is the sum of each rep's: the rep there all month, or leaving halfway."""
    staffed, ramped, ramped_square, at_end, hires = (np.zeros(horizon) for _ in range(5))
    starts = np.zeros(horizon)
    starts[0] = 1.0
    for start in range(horizon):
        if starts[start] == 0.0:
            continue
        is_veteran = veteran and start == 0
        hires[start] += 0.0 if is_veteran else starts[start]
        alive = 1.0
        for month in range(start, horizon):
            tenure = (VETERAN_TENURE if is_veteran else 0) + month - start
            leaving = alive * role.hazard(tenure)
            staffed[month] += starts[start] * (alive - leaving / 2)
            productivity = role.productivity(tenure)
            ramped[month] += starts[start] * (alive - leaving / 2) * productivity
            ramped_square[month] += starts[start] * (alive - leaving * 3 / 4) * productivity**2
            alive -= leaving
            at_end[month] += starts[start] * alive
            backfill_start = month + 1 + role.backfill_lag_months
            if role.backfill and backfill_start < horizon:
                starts[backfill_start] += starts[start] * leaving
    return Cohort(staffed, ramped, np.maximum(ramped_square - ramped**2, 0.0), at_end, hires)


def shifted(kernel: np.ndarray, offset: int) -> np.ndarray:
    """The kernel of a start ``offset`` months later (zeros before it)."""
    out = np.zeros_like(kernel)
    if offset < len(kernel):
        out[offset:] = kernel[: len(kernel) - offset]
    return out


@dataclass(frozen=True)
class SegmentFunnel:
    """Per accepted SQL of one segment: slot occupancy and expected bookings by month offset from acceptance."""

    holding: np.ndarray  # time-average slots held in the k-th month after the acceptance month (k = 0 its own)
    bookings: np.ndarray  # expected value won and closed in the k-th month after the acceptance month


def segment_funnel(scenario: Scenario, segment: str, horizon: int, rng: np.random.Generator) -> SegmentFunnel:
    """Sample opportunity paths as the engine draws them and fold them into month kernels."""
    funnel = scenario.funnel
    n = PATH_SAMPLES
    opportunity = rng.random(n) < for_segment(funnel.opportunity_rate, segment)
    discovery = for_segment(funnel.discovery_days, segment).ppf(rng.random(n))
    won, stage_days = stage_paths(scenario, segment, rng.random((2, len(funnel.stages), n)))
    accepted = rng.random(n) * DAYS_PER_MONTH  # acceptance spread evenly over its month
    closed = accepted + discovery + np.where(opportunity, stage_days, 0.0)
    month_edges = np.arange(horizon + 1) * DAYS_PER_MONTH
    held = np.clip(np.minimum(closed[:, None], month_edges[None, 1:]) - np.maximum(accepted[:, None], month_edges[None, :-1]), 0, None)
    close_month = np.floor(closed / DAYS_PER_MONTH).astype(int)
    wins = opportunity & won & (close_month < horizon)
    deal = scenario.segments[segment].deal_size.expected()
    bookings = np.bincount(close_month[wins], minlength=horizon)[:horizon] / n * deal
    return SegmentFunnel(holding=held.mean(axis=0) / DAYS_PER_MONTH, bookings=bookings)


@dataclass(frozen=True)
class HeadcountData:
    """Arrays indexed by plan role, territory, segment and month, in scenario order."""

    roles: list[str]  # the roles the plan hires: the first-touch role, then the opportunity role
    territories: list[str]
    segments: list[str]
    months: list[str]  # YYYY-MM labels
    veterans: np.ndarray  # (role, territory): reps on staff at the start
    committed: np.ndarray  # (role, territory, month): requisitions the scenario already plans
    cohorts: dict[str, Cohort]  # per role, from a new hire at offset 0
    veteran_cohorts: dict[str, Cohort]  # per role, from a rep on staff at the start
    inbound_mql: np.ndarray  # (segment, territory, month): MQLs from inbound sources
    outbound_mql: np.ndarray  # (segment, month): MQLs per fully ramped prospecting rep of the first-touch role
    first_touch_hours: np.ndarray  # (month): working hours of one fully ramped first-touch rep, net of time away
    handling_hours: np.ndarray  # (month): mean first-touch hours per MQL
    sql_yield: np.ndarray  # (segment): SQLs per MQL touched at once (the response decay is the queue's)
    service_hours: np.ndarray  # (month): working hours a first touch takes a fully ramped rep (time away included)
    off_hours_waits: np.ndarray  # hours from an MQL's arrival to the next opening, over a grid of arrival times
    off_hours_weights: np.ndarray  # the arrival grid's weights (how many MQLs arrive then)
    calendar_per_working_hour: np.ndarray  # (month): calendar hours per working hour of the first-touch role
    felt_wait: np.ndarray  # (month): share of the wait a lead feels (automated first replies feel shorter)
    slots_per_rep: np.ndarray  # (month): opportunity slots of one fully ramped opportunity rep
    funnels: dict[str, SegmentFunnel]
    carried_bookings: np.ndarray  # (month): expected bookings of the deals open on the first day
    carried_slots: np.ndarray  # (territory, month): expected slots those deals hold, month average
    fixed_cost: np.ndarray  # (month): costs no hiring decision changes (other roles' salaries, automation)
    lags: dict[str, int]

    @property
    def horizon(self) -> int:
        return len(self.months)


def headcount_data(scenario: Scenario) -> HeadcountData:
    """The expected-value data of a scenario for the headcount model."""
    horizon = scenario.horizon_months
    lead_role, opportunity_role = scenario.lead_role, scenario.opportunity_role
    if opportunity_role is None:
        raise ValueError("roles: the headcount model needs a role with works: opportunities")
    roles = [lead_role, opportunity_role]
    territories, segments = list(scenario.territories), list(scenario.segments)
    months = month_starts(scenario)

    committed = np.zeros((len(roles), len(territories), horizon))
    for r, name in enumerate(roles):
        for month, territory, count in scenario.requisitions(name):
            committed[r, territories.index(territory), month] += count

    inbound = np.zeros((len(segments), len(territories), horizon))
    outbound = np.zeros((len(segments), horizon))
    day_month = np.searchsorted(months, np.arange(int(months[-1])), side="right") - 1
    for index, (name, source) in enumerate(scenario.lead_sources.items()):
        per_month = np.bincount(day_month, weights=daily_rate(scenario, index, months), minlength=horizon)
        mql = for_segment(scenario.funnel.mql_rate, source.segment) if source.mql_rate is None else source.mql_rate
        g = segments.index(source.segment)
        if source.produced_by == lead_role:
            outbound[g] += per_month * mql
        elif source.produced_by is None:
            inbound[g] += np.outer(territory_shares(scenario, index), per_month) * mql
        # sources produced by other roles do not change with this plan: counted as inbound at today's staffing
        else:
            producers = scenario.roles[source.produced_by].headcount
            inbound[g] += np.outer([producers.get(t, 0) for t in territories], per_month) * mql

    carried = _carried(scenario, months, territories, len(segments))
    inbound[:, :, 0] += carried.pop("waiting_mql")  # the first day's queue: worked in the first month, like new MQLs

    calendar = WorkCalendar(scenario.roles[lead_role].working_hours, scenario.start)
    working_hours = calendar.working_days(months[:-1], months[1:]) * 24.0
    handling = np.full(horizon, scenario.roles[lead_role].handling_hours.expected())
    felt = np.ones(horizon)
    for lever in scenario.automation.values():
        if isinstance(lever, FollowUp):
            handling *= 1.0 - lever.handling_reduction * adoption_by_month(scenario, lever)
            felt *= 1.0 - lever.response_reduction * adoption_by_month(scenario, lever)
    sql_yield = np.array([for_segment(scenario.funnel.sql_rate, g) for g in segments])
    opp = scenario.roles[opportunity_role]
    rng = np.random.default_rng(scenario.seed)
    funnels = {g: segment_funnel(scenario, g, horizon, rng) for g in segments}

    return HeadcountData(
        roles=roles,
        territories=territories,
        segments=segments,
        months=[scenario.month_label(m) for m in range(horizon)],
        veterans=np.array([[scenario.roles[r].headcount.get(t, 0) for t in territories] for r in roles], dtype=float),
        committed=committed,
        cohorts={r: cohort(scenario.roles[r], horizon, veteran=False) for r in roles},
        veteran_cohorts={r: cohort(scenario.roles[r], horizon, veteran=True) for r in roles},
        inbound_mql=inbound,
        outbound_mql=outbound,
        first_touch_hours=working_hours * (1.0 - away_share_by_month(scenario, lead_role)),
        handling_hours=handling,
        sql_yield=sql_yield,
        service_hours=handling / (1.0 - away_share_by_month(scenario, lead_role)),
        **_off_hours_waits(scenario, calendar, months),
        calendar_per_working_hour=(months[1:] - months[:-1]) * 24.0 / working_hours,
        felt_wait=felt,
        slots_per_rep=opp.open_opportunity_limit * (1.0 - away_share_by_month(scenario, opportunity_role)),
        funnels=funnels,
        **carried,
        fixed_cost=_fixed_cost(scenario, roles),
        lags={r: scenario.roles[r].hiring_lag_months for r in roles},
    )


#: Replications of the first day's open work averaged for the expectation model.
CARRIED_SAMPLES = 8


def _carried(scenario: Scenario, months: np.ndarray, territories: list[str], segments: int) -> dict[str, np.ndarray]:
    """Expected bookings by month, and slots held by territory and month, of the deals open on the first day (the
    snapshot's, or the warm-up's), from their drawn fates averaged over a few replications: they do not depend on
    the plan, but the plan's months must not count on them twice. And the leads waiting for a first touch on the
    first day, by segment and territory (``waiting_mql``)."""
    horizon = len(months) - 1
    bookings, slots = np.zeros(horizon), np.zeros((len(territories), horizon))
    waiting = np.zeros((segments, len(territories)))
    for replication in range(CARRIED_SAMPLES):
        work = carried_work(scenario, scenario.seed, replication)
        if work is None:
            continue
        np.add.at(waiting, (work.lead_segment, work.lead_territory), 1.0)
        month = np.searchsorted(months, work.deal_holding, side="right") - 1
        won = work.deal_won & (month < horizon)
        bookings += np.bincount(month[won], weights=work.deal_amount[won], minlength=horizon)[:horizon]
        for t in range(len(territories)):
            mine = work.deal_territory == t
            slots[t] += total_days_in_months(np.zeros(mine.sum()), np.minimum(work.deal_holding[mine], months[-1]), months)
    return {"carried_bookings": bookings / CARRIED_SAMPLES, "carried_slots": slots / CARRIED_SAMPLES / np.diff(months),
            "waiting_mql": waiting / CARRIED_SAMPLES}


def _off_hours_waits(scenario: Scenario, calendar: WorkCalendar, months: np.ndarray) -> dict[str, np.ndarray]:
    """Hours from an MQL's arrival to the first-touch role's next opening, on a grid of arrival times (every quarter
    hour of the horizon), weighted by the inbound sources' expected arrivals on each day: leads arriving at night or
    at the weekend wait for Monday morning however many reps there are."""
    days = np.arange(int(months[-1]))
    inbound = [index for index, source in enumerate(scenario.lead_sources.values()) if source.produced_by is None]
    per_day = sum((daily_rate(scenario, index, months) for index in inbound), np.zeros(len(days)))
    if per_day.sum() <= 0:
        per_day = np.ones(len(days))
    times = (days[:, None] + (np.arange(96) + 0.5)[None, :] / 96).ravel()
    opening = calendar.time_at(calendar.work_before(times), resuming=True)
    waits = np.round(np.maximum(opening - times, 0.0) * 24.0, 2)
    values, where = np.unique(waits, return_inverse=True)  # a few hundred distinct waits: a compact distribution
    weights = np.bincount(where, weights=np.repeat(per_day, 96))
    return {"off_hours_waits": values, "off_hours_weights": weights / weights.sum()}


def erlang_c(servers: np.ndarray, load: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An M/M/c queue with ``load`` (arrival rate × mean service time) offered to ``servers``: the probability that
    an arrival waits, and the mean wait of those who do, in mean service times. Real-valued servers (ramped reps)
    interpolate between the whole numbers around them at the same utilisation; where the load reaches the servers,
    everyone waits forever."""
    servers, load = np.broadcast_arrays(np.asarray(servers, float), np.asarray(load, float))
    utilization = load / servers
    low = np.maximum(np.floor(servers), 1.0)
    share = np.clip(servers - low, 0.0, 1.0)
    (p_low, w_low), (p_high, w_high) = (_whole_erlang_c(c, utilization * c) for c in (low, low + 1.0))
    return (1.0 - share) * p_low + share * p_high, (1.0 - share) * w_low + share * w_high


def _whole_erlang_c(servers: np.ndarray, load: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Erlang C for whole numbers of servers, through Erlang B's stable recursion."""
    blocking = np.ones_like(load)
    for k in range(1, int(servers.max(initial=1.0)) + 1):
        step = load * blocking / (k + load * blocking)
        blocking = np.where(k <= servers, step, blocking)
    stable = load < servers
    with np.errstate(divide="ignore", invalid="ignore"):
        waiting = np.where(stable, servers * blocking / (servers - load * (1.0 - blocking)), 1.0)
        wait = np.where(stable, 1.0 / (servers - load), np.inf)
    return waiting, wait


def _fixed_cost(scenario: Scenario, plan_roles: list[str]) -> np.ndarray:
    """Monthly costs no hiring decision changes: salaries and hiring costs of the staffed roles the plan does not
    hire (their reps today and their own hiring plans), and automation tools, whose per-rep cost is counted on
    today's headcount."""
    horizon = scenario.horizon_months
    cost = np.zeros(horizon)
    today = sum(sum(role.headcount.values()) for role in scenario.roles.values() if role.span_of_control is None)
    for name, role in scenario.roles.items():
        if name in plan_roles or role.span_of_control is not None:
            continue
        veterans, hires = cohort(role, horizon, veteran=True), cohort(role, horizon, veteran=False)
        cost += sum(role.headcount.values()) * (role.salary_monthly * veterans.staffed + role.hiring_cost * veterans.hires)
        for month, _, count in scenario.requisitions(name):
            start = month + role.hiring_lag_months
            cost += count * (role.salary_monthly * shifted(hires.staffed, start) + role.hiring_cost * shifted(hires.hires, start))
    for lever in scenario.automation.values():
        cost += lever_cost_by_month(scenario, lever, np.full(horizon, float(today)))
    return cost
