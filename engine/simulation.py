"""One replication of a scenario as a SimPy discrete-event simulation, in two passes.

First touches depend on nothing downstream, so they run first, on the lead role's working clock (working days since
the start; ``engine.calendar``): there, nights and weekends vanish and a rep's touches follow one another without
breaks. Opportunities run second, on the calendar, with the SQLs the first pass produced arriving in order.
Only what changes who can work on what is an event: the end of a first touch (the rep becomes free), reps joining
and leaving, an SQL's arrival, month starts (ramp changes slots), leads arriving together after a night or weekend
(the best goes first), and the next slot release when an SQL waits for one. Lead arrivals and slot releases are
known in advance, so a free rep is handed the next arrival directly and releases are settled whenever a pool is
looked at. Everything else about a lead was drawn up front (``engine.leads``), and its stage path after acceptance
is known at once, so the simulation only records times; states and monthly figures are derived from those times.

When the organisation cannot queue (``Replication.cannot_queue``: first touches take no time and each territory's
are all done by one rep on staff throughout; every territory's opportunity reps hold a slot for each of its items in
every month), no lead ever waits, so each lead's path is its own: the passes are then computed for all leads at once
with numpy, and record the same times as the events would (the unconstrained organisation of a forecast).
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
import simpy
from simpy.events import NORMAL, URGENT
from scipy import special

from engine.automation import away_share_by_month, conversion_multiplier, levers_used, usage_rate_by_month
from engine.calendar import DealClock, WorkCalendar, month_starts, total_days_in_months
from engine.leads import CarriedWork, Leads, Origin, draw_leads
from engine.people import Rep, productivity, roster
from engine.streams import Stream, generator
from scenarios.model import FollowUp, LeadScoring, Scenario, for_segment

#: Queue priority of a lead that carries no score: FIFO among equals, behind well-scored leads.
UNSCORED_PRIORITY = -0.5


class _Call:
    """A call scheduled on SimPy's event queue: the lightest object its event loop processes (no process, no
    Timeout); SimPy runs ``callbacks`` with this object when the time comes."""

    __slots__ = ("callbacks", "args", "armed")
    _ok = True

    def __init__(self, callback, args: tuple):  # noqa: ANN001
        self.armed = [callback]
        self.args = args

    def schedule(self, env: simpy.Environment, time: float, priority: int = NORMAL) -> None:
        """Put the call on the event queue for ``time``; a call that has run can be scheduled again (SimPy sets
        ``callbacks`` to None as it runs them, so they are set again from ``armed``)."""
        self.callbacks = self.armed
        env.schedule(self, priority, time - env.now)


def _run(env: simpy.Environment, until: float) -> int:
    """Process the events before ``until``; return how many.

    Nothing is scheduled at or past ``until``, so the queue ends empty: an event left there would keep the whole
    replication alive after use (a SimPy environment is a reference cycle, freed only by the garbage collector)."""
    processed = 0
    while env.peek() < until:
        env.step()
        processed += 1
    return processed


def _doubles(values: np.ndarray) -> array:
    """A compact array of floats with fast item access (a quarter of a list's memory)."""
    return array("d", np.ascontiguousarray(values, dtype=float).tobytes())


def _numpy(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=float).copy()


def _in_arrival_order(sql_at: np.ndarray) -> np.ndarray:
    """The SQLs (leads with a time in ``sql_at``), in the order they arrive at the opportunity slots."""
    sqls = np.flatnonzero(~np.isnan(sql_at))
    return sqls[np.argsort(sql_at[sqls], kind="stable")]


def _event_times(times: np.ndarray) -> np.ndarray:
    """The times SimPy's clock reads at calls scheduled one after another for ``times`` (sorted), each from the one
    before (the first from time 0): SimPy adds the delay to the time of scheduling, ``a + (t − a)``, which can differ
    from ``t`` in the last bit. Solved as a fixed point, as such differences are rare."""
    clock = times
    while True:
        before = np.r_[0.0, clock[:-1]]
        again = before + (times - before)
        if np.array_equal(again, clock):
            return clock
        clock = again


@dataclass
class FirstTouchPool:
    """A territory's first touches: MQLs waiting by (priority, arrival order), and reps with nothing to do."""

    arrivals: list[int] = field(default_factory=list)  # the territory's MQLs in arrival order
    next: int = 0  # the first of ``arrivals`` not yet queued or handed to a rep
    queue: list = field(default_factory=list)
    free: list[int] = field(default_factory=list)
    wake_pending: bool = False  # a wake-up is scheduled for leads arriving together


@dataclass
class OwnerPool:
    """A territory's opportunity slots: SQLs waiting by (priority, arrival order), the reps and their slots."""

    queue: list = field(default_factory=list)
    active: list[int] = field(default_factory=list)  # opportunity reps on staff
    capacity: int = 0  # slots
    open: int = 0  # slots held (releases due by now are settled lazily)
    releases: list[float] = field(default_factory=list)  # when held slots free up, a heap
    wake_at: float = math.inf  # the release an SQL waiting for a slot is woken at


def closing_pace(scenario: Scenario, seed: int, replication: int) -> np.ndarray | None:
    """One replication's pace per month of the horizon (``ClosingPace``: lognormal with mean 1), or None."""
    pace = scenario.funnel.closing_pace
    if pace is None or pace.month_sd == 0:
        return None
    z = generator(seed, replication, Stream.PACE).standard_normal(scenario.horizon_months)
    return np.exp(pace.month_sd * z - pace.month_sd**2 / 2)


@dataclass(frozen=True)
class LeadTimes:
    """What the simulation recorded for each lead (NaN where it did not happen within the horizon)."""

    touch: np.ndarray  # first touch began
    touch_done: np.ndarray  # first touch ended
    sql: np.ndarray  # bool: qualified as SQL at the end of the first touch
    accept: np.ndarray  # an opportunity slot was taken
    opened: np.ndarray  # discovery ended: an opportunity was created (if it passed discovery)
    close: np.ndarray  # the slot is released (won, lost, or not an opportunity); may lie beyond the horizon
    response_hours: np.ndarray  # wait to first touch as the lead felt it (after automated follow-up)
    rep: np.ndarray  # first-touch rep (roster index), -1 if none


class Replication:
    """Builds and runs one replication; ``run`` returns the recorded lead times and per-month rep figures."""

    def __init__(self, scenario: Scenario, seed: int, replication: int, carried: CarriedWork | None = None):
        self.scenario = scenario
        self.months = month_starts(scenario)
        self.horizon = float(self.months[-1])
        self.reps: list[Rep] = roster(scenario, self.months, seed, replication)
        self.leads: Leads = draw_leads(scenario, self.months, self.reps, seed, replication, carried)
        self.deal_clock = DealClock(self.months, closing_pace(scenario, seed, replication))
        self.carried_deals = np.flatnonzero(self.leads.origin == Origin.DEAL)
        self.lead_role = scenario.roles[scenario.lead_role]
        self.calendar = WorkCalendar(self.lead_role.working_hours, scenario.start)
        self.away_share = {name: away_share_by_month(scenario, name) for name in scenario.roles}
        self.usage_rate = usage_rate_by_month(scenario)
        self._apply_levers()
        self.slots = self._slots()
        self._territory_index = {name: i for i, name in enumerate(scenario.territories)}
        # the MQLs that go to a first touch: not held back by lead scoring, not deals carried in past it
        self._entering = np.flatnonzero(self.leads.mql & ~self.nurtured & (self.leads.origin != Origin.DEAL))
        self._touch_reps = self._one_rep_per_territory()
        self.cannot_queue = self._touch_reps is not None and self._slots_for_every_item()

    def _slots(self) -> list[list[int]]:
        """Per rep and month: the opportunities a rep of the opportunity role can hold at once (at least one)."""
        name = self.scenario.opportunity_role
        if name is None:
            return [[] for _ in self.reps]
        limit = self.scenario.roles[name].open_opportunity_limit
        shares = self._capacity_share(name)
        return [[max(1, math.floor(limit * share + 1e-9)) for share in by_month] for by_month in shares]

    def _capacity_share(self, role_name: str) -> list[list[float]]:
        """Per rep and month: the share of full capacity (ramp × time not away) of a rep of the role; empty for
        reps of other roles."""
        role, away = self.scenario.roles[role_name], self.away_share[role_name]
        months = range(self.scenario.horizon_months)
        return [[productivity(rep, m, role) * (1.0 - away[m]) for m in months] if rep.role == role_name else []
                for rep in self.reps]

    # ----- can the organisation queue? -----

    def _on_staff_throughout(self, rep: Rep) -> bool:
        return rep.start <= 0.0 and rep.end >= self.horizon

    def _one_rep_per_territory(self) -> np.ndarray | None:
        """Per territory, the one rep who does its first touches, if first touches take no time and every territory
        with MQLs to touch has exactly one rep of the lead role, on staff and at work throughout the horizon; else
        None. That rep is then free the instant each lead arrives."""
        work = self.leads.handling_hours[self._entering] * self.handling_factor[self._entering]
        if work.any():
            return None
        speed = self._capacity_share(self.scenario.lead_role)
        territories = self._territory_index
        reps = np.full(len(territories), -1)
        for index, rep in enumerate(self.reps):
            if rep.role == self.scenario.lead_role:
                t = territories[rep.territory]
                at_work = self._on_staff_throughout(rep) and min(speed[index]) > 0.0
                reps[t] = index if reps[t] == -1 and at_work else -2  # -2: more than one rep, or one not always at work
        needed = np.unique(self.leads.territory[self._entering])
        return reps if (reps[needed] >= 0).all() else None

    def _slots_for_every_item(self) -> bool:
        """Whether, in every territory and month, the opportunity reps on staff throughout the horizon hold at least
        as many slots as the territory has leads and deals: then no SQL ever waits for a slot."""
        capacity = np.zeros((len(self._territory_index), self.scenario.horizon_months), dtype=np.int64)
        for index, rep in enumerate(self.reps):
            if rep.role == self.scenario.opportunity_role and self._on_staff_throughout(rep):
                capacity[self._territory_index[rep.territory]] += self.slots[index]
        items = np.bincount(self.leads.territory, minlength=len(capacity))
        return bool((capacity.min(axis=1) >= items).all())

    # ----- automation levers, applied per lead and per month before the run -----

    def _apply_levers(self) -> None:
        leads, n = self.leads, len(self.leads)
        arrival_month = np.searchsorted(self.months, leads.time, side="right") - 1
        self.response_factor = np.ones(n)
        self.handling_factor = np.ones(n)
        accuracy = np.full(n, np.nan)
        filter_share = np.zeros(n)
        used_by_lever = levers_used(self.scenario, leads.adoption, arrival_month)
        for lever, used in zip(self.scenario.automation.values(), used_by_lever):
            if isinstance(lever, FollowUp):
                self.response_factor[used] *= 1.0 - lever.response_reduction
                self.handling_factor[used] *= 1.0 - lever.handling_reduction
            elif isinstance(lever, LeadScoring):
                better = used & ~(accuracy >= lever.accuracy)
                accuracy[better] = lever.accuracy
                filter_share[better] = lever.filter_share
        scored = np.flatnonzero(~np.isnan(accuracy))
        rho = accuracy[scored]
        latent = rho * special.ndtri(1.0 - np.clip(leads.quality[scored], 1e-12, 1 - 1e-12))
        score = special.ndtr(latent + np.sqrt(1.0 - rho**2) * leads.score_noise[scored])
        self.priority = np.full(n, UNSCORED_PRIORITY)
        self.priority[scored] = -score
        self.nurtured = np.zeros(n, dtype=bool)
        self.nurtured[scored] = leads.mql[scored] & (score < filter_share[scored])
        segments = list(self.scenario.segments)
        sql_rate = np.array([for_segment(self.scenario.funnel.sql_rate, s) for s in segments])
        uplift = conversion_multiplier(self.scenario, used_by_lever, "sql")
        self.sql_probability = np.minimum(1.0, sql_rate[leads.segment] * uplift)

    # ----- the run -----

    def run(self) -> LeadTimes:
        """Both passes: as events, or for all leads at once when the organisation ``cannot_queue``."""
        leads = self.leads
        self.events = 0  # events processed, both passes
        self._prepare_first_touches()
        if self.cannot_queue:
            self._first_touches_at_arrival()
        else:
            self._first_touches()
        touch, done, response, sql = self._first_touches_on_the_calendar()
        sql_at = np.where(sql, done, np.nan)
        accept, close = self._opportunities_at_qualification(sql_at) if self.cannot_queue else self._opportunities(sql_at)
        self.busy_hours = self._busy_hours()
        times = LeadTimes(
            touch=touch, touch_done=done, sql=sql, accept=accept, opened=self.deal_clock.after(accept, leads.discovery_days), close=close,
            response_hours=response, rep=np.frombuffer(self._rep, dtype=np.int64).copy(),
        )
        entered = self._entering
        waited_until = np.where(np.isnan(touch), self.horizon, touch)
        self.waiting_area = total_days_in_months(np.maximum(leads.time[entered], 0.0), waited_until[entered], self.months)
        return times

    # ----- first touches, on the working clock -----
    #
    # Arrivals are known in advance, so they are not events: a rep who becomes free takes the best waiting lead,
    # or, with nobody waiting, is handed the next lead to arrive (served the moment it arrives). Leads that arrive
    # while every rep is busy wait in a queue ordered by priority. Leads arriving over a night or weekend all arrive
    # at the same working instant, the next opening: there, a wake-up lets every free rep take the best of them.

    def _prepare_first_touches(self) -> None:
        """Arrivals on the working clock, and the records of both ways of running first touches."""
        clock, leads, n = self.calendar, self.leads, len(self.leads)
        self._arrival = _doubles(clock.work_before(np.maximum(leads.time, 0.0)))  # leads carried in: at the start
        self._working_month_starts = clock.work_before(self.months).tolist()
        self._end = self._working_month_starts[-1]  # the horizon on the working clock
        self._touch, self._touch_end = _doubles(np.full(n, np.nan)), _doubles(np.full(n, np.nan))
        self._rep = array("q", np.full(n, -1, dtype=np.int64).tobytes())

    def _first_touches_at_arrival(self) -> None:
        """First touches when no lead can wait: each MQL is touched, in no time, by its territory's one rep at the
        instant it arrives on the working clock (one carried in: at the start), if that is before the horizon.

        The events hand a lead arriving alone its own arrival time, and leads arriving together after a night the
        time SimPy's clock reads at their wake-up, ``now + (arrival − now)``: the arrival itself, except possibly in
        the last bit when the rep has been free since less than half that working time."""
        arrival = np.frombuffer(self._arrival, dtype=float)
        touched = self._entering[arrival[self._entering] < self._end]
        np.frombuffer(self._touch, dtype=float)[touched] = arrival[touched]  # the records, written in place
        np.frombuffer(self._touch_end, dtype=float)[touched] = arrival[touched]
        np.frombuffer(self._rep, dtype=np.int64)[touched] = self._touch_reps[self.leads.territory[touched]]

    def _first_touches(self) -> None:
        env = self.first_touch_env = simpy.Environment()
        clock, leads, n = self.calendar, self.leads, len(self.leads)
        self._priority = _doubles(self.priority)
        self._territory = leads.territory.tolist()
        self._work = _doubles(leads.handling_hours * self.handling_factor / 24.0)  # working days at full speed
        self._speed = self._capacity_share(self.scenario.lead_role)
        entering = self._entering
        alone = np.zeros(n, dtype=bool)  # no other lead of the territory arrives at the same working instant
        self.first_touch = []
        for territory in range(len(self.scenario.territories)):
            arrivals = entering[leads.territory[entering] == territory]
            at = np.frombuffer(self._arrival, dtype=float)[arrivals]
            same = at[1:] == at[:-1]
            alone[arrivals] = ~np.r_[False, same] & ~np.r_[same, False]
            self.first_touch.append(FirstTouchPool(arrivals.tolist()))
        self._arrives_alone = bytearray(alone.tobytes())
        self.busy = [False] * len(self.reps)
        self.leaving = [False] * len(self.reps)
        lead_role = self.scenario.lead_role
        self._touch_done_call = [  # a rep has at most one touch under way: one call per rep, scheduled again and again
            _Call(self._first_touch_done, (self._territory_index[rep.territory], index))
            for index, rep in enumerate(self.reps)
        ]
        for index, rep in enumerate(self.reps):
            if rep.role != lead_role:
                continue
            # Nothing at or past the end (after the last close before the horizon, the working clock reads the end).
            if (joins_at := float(clock.work_before(rep.start))) < self._end:
                _Call(self._first_touch_rep_joins, (index,)).schedule(env, joins_at)
            if rep.end < self.horizon and (leaves_at := float(clock.work_before(rep.end))) < self._end:
                # first at its instant: one who left in the night is gone by the opening
                _Call(self._first_touch_rep_leaves, (index,)).schedule(env, leaves_at, URGENT)
        self.events += _run(env, until=self._end)
        del self._touch_done_call  # its calls refer back to this replication
        for pool in self.first_touch:
            self._pull_arrivals(pool, self._end)

    def _pull_arrivals(self, pool: FirstTouchPool, until: float) -> None:
        """Move the leads that have arrived by ``until`` into the waiting queue."""
        arrivals, arrival, priority = pool.arrivals, self._arrival, self._priority
        while pool.next < len(arrivals) and arrival[arrivals[pool.next]] <= until:
            lead = arrivals[pool.next]
            heapq.heappush(pool.queue, (priority[lead], lead))
            pool.next += 1

    def _rep_free(self, territory: int, rep: int) -> None:
        """A first-touch rep has nothing to do: serve the queue, or take the next arrival, or wait for one."""
        pool, now = self.first_touch[territory], self.first_touch_env.now
        arrivals = pool.arrivals
        if pool.next < len(arrivals) and self._arrival[arrivals[pool.next]] <= now:
            self._pull_arrivals(pool, now)
        if pool.queue:
            self._start_touch(territory, rep, heapq.heappop(pool.queue)[1], now)
            return
        if pool.next < len(arrivals):
            lead = arrivals[pool.next]
            if not self._arrives_alone[lead]:
                self._wake_at(territory, self._arrival[lead])
            elif self._arrival[lead] < self._end:
                pool.next += 1
                self._start_touch(territory, rep, lead, self._arrival[lead])
                return
        pool.free.append(rep)

    def _wake_at(self, territory: int, time: float) -> None:
        """Wake the free reps when leads arrive together; before anything else then, so that reps who waited go
        first (a rep joining at that instant, say)."""
        pool, env = self.first_touch[territory], self.first_touch_env
        if not pool.wake_pending and time < self._end:
            pool.wake_pending = True
            _Call(self._wake, (territory,)).schedule(env, time, URGENT)

    def _wake(self, call: _Call) -> None:
        """Leads arrived together: every free rep takes one, best first."""
        (territory,) = call.args
        pool = self.first_touch[territory]
        pool.wake_pending = False
        free, pool.free = pool.free, []
        for rep in free:
            self._rep_free(territory, rep)

    def _start_touch(self, territory: int, rep: int, lead: int, start: float) -> None:
        end = start + self._work[lead] / self._speed[rep][bisect_right(self._working_month_starts, start) - 1]
        self.busy[rep] = True
        self._touch[lead] = start
        self._touch_end[lead] = end
        self._rep[lead] = rep
        if end < self._end:
            self._touch_done_call[rep].schedule(self.first_touch_env, end)

    def _first_touch_done(self, call: _Call) -> None:
        territory, rep = call.args
        self.busy[rep] = False
        if not self.leaving[rep]:
            self._rep_free(territory, rep)

    def _first_touch_rep_joins(self, call: _Call) -> None:
        (rep,) = call.args
        if not self.leaving[rep]:  # not gone before its first working minute
            self._rep_free(self._territory_index[self.reps[rep].territory], rep)

    def _first_touch_rep_leaves(self, call: _Call) -> None:
        """A rep leaves; one at work (or already handed the next lead) finishes that lead first."""
        (rep,) = call.args
        self.leaving[rep] = True
        free = self.first_touch[self._territory_index[self.reps[rep].territory]].free
        if rep in free:
            free.remove(rep)

    def _first_touches_on_the_calendar(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per lead, on the calendar: when its first touch began and ended (NaN past the horizon), the wait as the
        lead felt it (hours, after automated follow-up), and whether it became an SQL (decided at the touch's end,
        with conversion decaying with that wait)."""
        leads, clock = self.leads, self.calendar
        touch_at, end_at = _numpy(self._touch), _numpy(self._touch_end)
        touch, done = np.full(len(leads), np.nan), np.full(len(leads), np.nan)
        touched, ended = np.flatnonzero(~np.isnan(touch_at)), np.flatnonzero(end_at < self._end)
        # Never before the lead's arrival or the touch's start, whatever the rounding; a touch begun at the last
        # working instant before the horizon begins then, not at the next opening.
        touch[touched] = np.maximum(clock.time_at(touch_at[touched], resuming=True), leads.time[touched])
        late = touched[touch[touched] >= self.horizon]
        touch[late] = clock.time_at(touch_at[late])
        done[ended] = np.maximum(clock.time_at(end_at[ended]), touch[ended])
        response = (touch - leads.time) * 24.0 * self.response_factor
        decay = self.scenario.funnel.response_decay
        multiplier = 1.0 if decay is None else decay.multiplier(response)
        sql = ~np.isnan(done) & (leads.quality < self.sql_probability * multiplier)
        return touch, done, response, sql

    def _busy_hours(self) -> np.ndarray:
        """First-touch working hours per month, counted in the month each touch began."""
        touch_at, end_at = _numpy(self._touch), _numpy(self._touch_end)
        touched = ~np.isnan(touch_at)
        month = np.searchsorted(self._working_month_starts, touch_at[touched], side="right") - 1
        hours = (end_at[touched] - touch_at[touched]) * 24.0
        return np.bincount(month, weights=hours, minlength=self.scenario.horizon_months)

    # ----- opportunities, on the calendar -----

    def _holding_days(self) -> np.ndarray:
        """Per lead, how long it holds an opportunity slot once it takes one: discovery, then the stages if any."""
        leads = self.leads
        return leads.discovery_days + np.where(leads.opportunity, leads.stage_days, 0.0)

    def _opportunities_at_qualification(self, sql_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Opportunities when no lead can wait: deals carried in hold their slots from the start, and each SQL takes
        one the instant it qualifies, at the time SimPy's clock would read then (``_event_times``). Per lead: when
        it took a slot and when it releases it (NaN if it did not take one)."""
        accept = np.full(len(self.leads), np.nan)
        accept[self.carried_deals] = 0.0
        sqls = _in_arrival_order(sql_at)
        at = _event_times(sql_at[sqls])
        on_time = at < self.horizon
        accept[sqls[on_time]] = at[on_time]
        return accept, self.deal_clock.after(accept, self._holding_days())

    def _opportunities(self, sql_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Opportunities as events, after the first touches' events (whose priorities and territories it reads). Per
        lead: when it took a slot and when it releases it (NaN if it did not)."""
        env = self.opportunity_env = simpy.Environment()
        leads = self.leads
        self._accept, self._close = _doubles(np.full(len(leads), np.nan)), _doubles(np.full(len(leads), np.nan))
        self._holding = _doubles(self._holding_days())
        self._calendar_month_starts = self.months.tolist()
        self._sqls = _in_arrival_order(sql_at).tolist()
        self._sql_at = sql_at[self._sqls].tolist()
        self._next_sql = 0
        self.owners = [OwnerPool() for _ in self.scenario.territories]
        self._hold_carried_deals()
        owner_role = self.scenario.opportunity_role
        for index, rep in enumerate(self.reps):
            if rep.role == owner_role and rep.start < self.horizon:
                _Call(self._owner_joins, (index,)).schedule(env, rep.start)
                if rep.end < self.horizon:
                    _Call(self._owner_leaves, (index,)).schedule(env, rep.end)
        if self._sqls:
            _Call(self._sql_arrives, ()).schedule(env, self._sql_at[0])
        env.process(self._month_boundaries())
        self.events += _run(env, until=self.horizon)
        for pool in self.owners:
            self._settle_releases(pool, self.horizon)
        return _numpy(self._accept), _numpy(self._close)

    def _hold_carried_deals(self) -> None:
        """Deals carried in hold their territory's slots from the first instant, before any new SQL."""
        for lead in self.carried_deals.tolist():
            pool = self.owners[self._territory[lead]]
            pool.open += 1
            self._accept[lead] = 0.0
            self._close[lead] = close = self.deal_clock.after(0.0, self._holding[lead])
            if close < self.horizon:
                heapq.heappush(pool.releases, close)

    def _month_boundaries(self):  # noqa: ANN202 - a SimPy process
        env = self.opportunity_env
        for month in range(1, self.scenario.horizon_months):
            yield env.timeout(self.months[month] - env.now)
            for territory in range(len(self.owners)):
                self._update_capacity(territory)

    def _sql_arrives(self, call: _Call) -> None:
        """The next SQL joins its territory's queue for an opportunity slot."""
        lead = self._sqls[self._next_sql]
        self._next_sql += 1
        territory = self._territory[lead]
        heapq.heappush(self.owners[territory].queue, (self._priority[lead], lead))
        self._dispatch_owner(territory)
        if self._next_sql < len(self._sqls):
            call.schedule(self.opportunity_env, self._sql_at[self._next_sql])  # SQLs arrive one after another

    def _update_capacity(self, territory: int) -> None:
        pool = self.owners[territory]
        month = bisect_right(self._calendar_month_starts, self.opportunity_env.now) - 1
        pool.capacity = sum(self.slots[rep][month] for rep in pool.active)
        self._dispatch_owner(territory)

    # Slots free up at known times, so releases are not events: they are settled whenever the pool is looked at,
    # and only an SQL left waiting for a slot schedules a wake-up at the next release.

    def _settle_releases(self, pool: OwnerPool, now: float) -> None:
        releases = pool.releases
        while releases and releases[0] <= now:
            heapq.heappop(releases)
            pool.open -= 1

    def _dispatch_owner(self, territory: int) -> None:
        pool, now = self.owners[territory], self.opportunity_env.now
        if pool.releases and pool.releases[0] <= now:
            self._settle_releases(pool, now)
        while pool.queue and pool.open < pool.capacity:
            _, lead = heapq.heappop(pool.queue)
            pool.open += 1
            self._accept[lead] = now
            close = self.deal_clock.after(now, self._holding[lead])
            self._close[lead] = close
            if close < self.horizon:
                heapq.heappush(pool.releases, close)
        if pool.queue and pool.releases and pool.releases[0] < pool.wake_at:
            pool.wake_at = pool.releases[0]
            _Call(self._slot_freed, (territory,)).schedule(self.opportunity_env, pool.wake_at)

    def _slot_freed(self, call: _Call) -> None:
        (territory,) = call.args
        self.owners[territory].wake_at = math.inf
        self._dispatch_owner(territory)

    def _owner_joins(self, call: _Call) -> None:
        (rep,) = call.args
        territory = self._territory_index[self.reps[rep].territory]
        self.owners[territory].active.append(rep)
        self._update_capacity(territory)

    def _owner_leaves(self, call: _Call) -> None:
        (rep,) = call.args
        territory = self._territory_index[self.reps[rep].territory]
        self.owners[territory].active.remove(rep)
        self._update_capacity(territory)
