"""One replication of a scenario as a SimPy discrete-event simulation.

Only what changes who can work on what is an event: the end of a first touch (the rep becomes free), reps joining
and leaving, month starts (ramp changes slots), the first working minute of a day when leads wait overnight, and
the next slot release when an SQL waits for one. Arrivals and slot releases are known in advance, so a free rep is
handed the next arrival directly and releases are settled whenever a pool is looked at.
Everything else about a lead was drawn up front (``engine.leads``), and its stage path after acceptance is known
at once, so the simulation only records times; states and monthly figures are derived from those times afterwards.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
import simpy
from simpy.events import NORMAL
from scipy import special

from engine.automation import away_share_by_month, conversion_multiplier, levers_used, usage_rate_by_month
from engine.calendar import WorkCalendar, days_in_months, month_starts
from engine.leads import Leads, draw_leads
from engine.people import Rep, productivity, roster
from scenarios.model import FollowUp, LeadScoring, Scenario, for_segment

#: Queue priority of a lead that carries no score: FIFO among equals, behind well-scored leads.
UNSCORED_PRIORITY = -0.5


class _Call:
    """A call scheduled on SimPy's event queue: the lightest object its event loop processes (no process, no
    Timeout); SimPy runs ``callbacks`` with this object when the time comes."""

    __slots__ = ("callbacks", "args")
    _ok = True

    def __init__(self, callback, args: tuple):  # noqa: ANN001
        self.callbacks = [callback]
        self.args = args


def _doubles(values: np.ndarray) -> array:
    """A compact array of floats with fast item access (a quarter of a list's memory)."""
    return array("d", np.ascontiguousarray(values, dtype=float).tobytes())


def _numpy(values: array) -> np.ndarray:
    return np.frombuffer(values, dtype=float).copy()


@dataclass
class FirstTouchPool:
    """A territory's first touches: MQLs waiting by (priority, arrival order), and reps with nothing to do."""

    arrivals: list[int] = field(default_factory=list)  # the territory's MQLs in arrival order
    next: int = 0  # the first of ``arrivals`` not yet queued or handed to a rep
    queue: list = field(default_factory=list)
    free: list[int] = field(default_factory=list)
    wake_pending: bool = False  # a wake-up at the next working minute is scheduled


@dataclass
class OwnerPool:
    """A territory's opportunity slots: SQLs waiting by (priority, arrival order), the reps and their slots."""

    queue: list = field(default_factory=list)
    active: list[int] = field(default_factory=list)  # opportunity reps on staff
    capacity: int = 0  # slots
    open: int = 0  # slots held (releases due by now are settled lazily)
    releases: list[float] = field(default_factory=list)  # when held slots free up, a heap
    wake_at: float = math.inf  # the release an SQL waiting for a slot is woken at


@dataclass(frozen=True)
class LeadTimes:
    """What the simulation recorded for each lead (NaN where it did not happen within the horizon)."""

    touch: np.ndarray  # first touch began
    touch_done: np.ndarray  # first touch ended
    sql: np.ndarray  # bool: qualified as SQL at the end of the first touch
    accept: np.ndarray  # an opportunity slot was taken
    close: np.ndarray  # the slot is released (won, lost, or not an opportunity); may lie beyond the horizon
    response_hours: np.ndarray  # wait to first touch as the lead felt it (after automated follow-up)
    rep: np.ndarray  # first-touch rep (roster index), -1 if none


class Replication:
    """Builds and runs one replication; ``run`` returns the recorded lead times and per-month rep figures."""

    def __init__(self, scenario: Scenario, seed: int, replication: int):
        self.scenario = scenario
        self.months = month_starts(scenario)
        self.horizon = float(self.months[-1])
        self.reps: list[Rep] = roster(scenario, self.months, seed, replication)
        self.leads: Leads = draw_leads(scenario, self.months, self.reps, seed, replication)
        self.lead_role = scenario.roles[scenario.lead_role]
        self.opportunity_role_name = scenario.opportunity_role
        self.calendar = WorkCalendar(self.lead_role.working_hours, scenario.start)
        self.away_share = {name: away_share_by_month(scenario, name) for name in scenario.roles}
        self.usage_rate = usage_rate_by_month(scenario)
        self._apply_levers()

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
        scored = ~np.isnan(accuracy)
        rho = np.where(scored, accuracy, 0.0)
        latent = rho * special.ndtri(1.0 - np.clip(leads.quality, 1e-12, 1 - 1e-12))
        score = special.ndtr(latent + np.sqrt(1.0 - rho**2) * leads.score_noise)
        self.priority = np.where(scored, -score, UNSCORED_PRIORITY)
        self.nurtured = leads.mql & scored & (score < filter_share)
        segments = list(self.scenario.segments)
        sql_rate = np.array([for_segment(self.scenario.funnel.sql_rate, s) for s in segments])
        uplift = conversion_multiplier(self.scenario, used_by_lever, "sql")
        self.sql_probability = np.minimum(1.0, sql_rate[leads.segment] * uplift)

    # ----- the run -----

    def run(self) -> LeadTimes:
        env = self.env = simpy.Environment()
        leads, n = self.leads, len(self.leads)
        territories = len(self.scenario.territories)
        unset = np.full(n, np.nan)
        self._touch, self._done, self._response = _doubles(unset), _doubles(unset), _doubles(unset)
        self._accept, self._close = _doubles(unset), _doubles(unset)
        self._rep, self._sql = array("q", np.full(n, -1, dtype=np.int64).tobytes()), bytearray(n)
        self._arrival = _doubles(leads.time)
        self._work = _doubles(leads.handling_hours * self.handling_factor)
        self._felt = _doubles(self.response_factor * 24.0)
        self._priority = _doubles(self.priority)
        self._converts_below = _doubles(self.sql_probability)
        self._quality = _doubles(leads.quality)
        self._holding = _doubles(leads.discovery_days + np.where(leads.opportunity, leads.stage_days, 0.0))
        self._arrives_open = bytearray(self.calendar.open_at(leads.time).tobytes())  # reps at work when it arrives
        self._speed = self._first_touch_speed()
        self._lead_role_name = self.scenario.lead_role
        self._month_starts = self.months.tolist()  # bisect on a list, not on numpy scalars
        decay = self.scenario.funnel.response_decay
        self._decay_floor = decay.floor if decay else 1.0
        self._decay_half_life = decay.half_life_hours if decay else math.inf
        entering = np.flatnonzero(leads.mql & ~self.nurtured)
        self.first_touch = [FirstTouchPool() for _ in range(territories)]
        self.owners = [OwnerPool() for _ in range(territories)]
        for territory, pool in enumerate(self.first_touch):
            pool.arrivals = entering[leads.territory[entering] == territory].tolist()
        self.busy = [False] * len(self.reps)
        self.leaving = [False] * len(self.reps)
        self._busy_hours = [0.0] * self.scenario.horizon_months
        self._territory_index = {name: i for i, name in enumerate(self.scenario.territories)}
        for index, rep in enumerate(self.reps):
            if rep.role in (self._lead_role_name, self.opportunity_role_name):
                self._at(rep.start, self._join, index)
                if rep.end < self.horizon:
                    self._at(rep.end, self._leave, index)
        env.process(self._month_boundaries())
        env.run(until=self.horizon)
        for pool in self.first_touch:
            self._pull_arrivals(pool, self.horizon)
        for pool in self.owners:
            self._settle_releases(pool, self.horizon)
        return self._recorded()

    def _recorded(self) -> LeadTimes:
        self.busy_hours = np.array(self._busy_hours)
        times = LeadTimes(
            touch=_numpy(self._touch), touch_done=_numpy(self._done), sql=np.frombuffer(self._sql, dtype=bool).copy(),
            accept=_numpy(self._accept), close=_numpy(self._close), response_hours=_numpy(self._response),
            rep=np.frombuffer(self._rep, dtype=np.int64).copy(),
        )
        waited_until = np.where(np.isnan(times.touch), self.horizon, times.touch)
        entered = self.leads.mql & ~self.nurtured
        start, end = self.leads.time[entered], waited_until[entered]
        self.waiting_area = days_in_months(start, end, self.months).sum(axis=0)
        return times

    def _first_touch_speed(self) -> list[list[float]]:
        """Per rep and month: the share of full speed at first touches (ramp × time not away)."""
        away = self.away_share[self.scenario.lead_role]
        months = range(self.scenario.horizon_months)
        return [
            [productivity(rep, m, self.lead_role) * (1.0 - away[m]) for m in months]
            if rep.role == self.scenario.lead_role else []
            for rep in self.reps
        ]

    def _at(self, time: float, callback, *args) -> None:  # noqa: ANN001
        """Call ``callback(*args)`` at ``time``; the callbacks below take the scheduled ``_Call`` and read its args."""
        self.env.schedule(_Call(callback, args), NORMAL, time - self.env.now)

    def _month(self) -> int:
        return bisect_right(self._month_starts, self.env.now) - 1

    def _month_boundaries(self):  # noqa: ANN202 - a SimPy process
        for month in range(1, self.scenario.horizon_months):
            yield self.env.timeout(self.months[month] - self.env.now)
            for territory in range(len(self.owners)):
                self._update_capacity(territory)

    # ----- first touch (the role that works leads) -----
    #
    # Arrivals are known in advance, so they are not events: a rep who becomes free takes the best waiting lead,
    # or, with nobody waiting, is handed the next lead to arrive (served the moment it arrives, if that falls in
    # working hours). Leads arriving while reps are busy or off duty wait in a queue ordered by priority.

    def _pull_arrivals(self, pool: FirstTouchPool, until: float) -> None:
        """Move the leads that have arrived by ``until`` into the waiting queue."""
        arrivals, arrival, priority = pool.arrivals, self._arrival, self._priority
        while pool.next < len(arrivals) and arrival[arrivals[pool.next]] <= until:
            lead = arrivals[pool.next]
            heapq.heappush(pool.queue, (priority[lead], lead))
            pool.next += 1

    def _rep_free(self, territory: int, rep: int) -> None:
        """A first-touch rep has nothing to do: serve the queue, or take the next arrival, or wait for one."""
        pool, now = self.first_touch[territory], self.env.now
        arrivals = pool.arrivals
        if pool.next < len(arrivals) and self._arrival[arrivals[pool.next]] <= now:
            self._pull_arrivals(pool, now)
        if pool.queue:
            if self.calendar.is_open(now):
                self._start_touch(territory, rep, heapq.heappop(pool.queue)[1], now)
            else:
                pool.free.append(rep)
                self._wake_at(territory, self.calendar.next_open(now))
            return
        if pool.next < len(pool.arrivals):
            lead = pool.arrivals[pool.next]
            if self._arrives_open[lead]:
                pool.next += 1
                self._start_touch(territory, rep, lead, self._arrival[lead])
                return
            self._wake_at(territory, self.calendar.next_open(self._arrival[lead]))
        pool.free.append(rep)

    def _wake_at(self, territory: int, time: float) -> None:
        pool = self.first_touch[territory]
        if not pool.wake_pending:
            pool.wake_pending = True
            self._at(time, self._wake, territory)

    def _wake(self, call: _Call) -> None:
        """Working hours begin with leads waiting: every free rep takes one, best first."""
        (territory,) = call.args
        pool = self.first_touch[territory]
        pool.wake_pending = False
        free, pool.free = pool.free, []
        for rep in free:
            self._rep_free(territory, rep)

    def _start_touch(self, territory: int, rep: int, lead: int, start: float) -> None:
        month = bisect_right(self._month_starts, start) - 1
        work = self._work[lead] / self._speed[rep][month]
        self.busy[rep] = True
        self._busy_hours[month] += work
        self._touch[lead] = start
        self._rep[lead] = rep
        self._response[lead] = (start - self._arrival[lead]) * self._felt[lead]
        done = self.calendar.finish(start, work)
        if done < self.horizon:  # self._at, inlined: this runs once per first touch
            env = self.env
            env.schedule(_Call(self._first_touch_done, (territory, rep, lead)), NORMAL, done - env.now)

    def _first_touch_done(self, call: _Call) -> None:
        territory, rep, lead = call.args
        self._done[lead] = self.env.now
        floor = self._decay_floor  # ResponseDecay.multiplier, inlined: this runs once per first touch
        chance = self._converts_below[lead] * (floor + (1.0 - floor) * 0.5 ** (self._response[lead] / self._decay_half_life))
        if self._quality[lead] < chance:
            self._sql[lead] = 1
            heapq.heappush(self.owners[territory].queue, (self._priority[lead], lead))
            self._dispatch_owner(territory)
        self.busy[rep] = False
        if not self.leaving[rep]:
            self._rep_free(territory, rep)

    # ----- opportunities (the role that owns them) -----

    def slots(self, rep: int, month: int) -> int:
        role = self.scenario.roles[self.opportunity_role_name]
        share = productivity(self.reps[rep], month, role) * (1.0 - self.away_share[self.opportunity_role_name][month])
        return max(1, math.floor(role.open_opportunity_limit * share + 1e-9))

    def _update_capacity(self, territory: int) -> None:
        pool, month = self.owners[territory], self._month()
        pool.capacity = sum(self.slots(rep, month) for rep in pool.active)
        self._dispatch_owner(territory)

    # Slots free up at known times, so releases are not events: they are settled whenever the pool is looked at,
    # and only an SQL left waiting for a slot schedules a wake-up at the next release.

    def _settle_releases(self, pool: OwnerPool, now: float) -> None:
        releases = pool.releases
        while releases and releases[0] <= now:
            heapq.heappop(releases)
            pool.open -= 1

    def _dispatch_owner(self, territory: int) -> None:
        pool, now = self.owners[territory], self.env.now
        if pool.releases and pool.releases[0] <= now:
            self._settle_releases(pool, now)
        while pool.queue and pool.open < pool.capacity:
            _, lead = heapq.heappop(pool.queue)
            pool.open += 1
            self._accept[lead] = now
            close = now + self._holding[lead]
            self._close[lead] = close
            if close < self.horizon:
                heapq.heappush(pool.releases, close)
        if pool.queue and pool.releases and pool.releases[0] < pool.wake_at:
            pool.wake_at = pool.releases[0]
            self._at(pool.wake_at, self._slot_freed, territory)

    def _slot_freed(self, call: _Call) -> None:
        (territory,) = call.args
        self.owners[territory].wake_at = math.inf
        self._dispatch_owner(territory)

    # ----- staffing -----

    def _join(self, call: _Call) -> None:
        (rep,) = call.args
        territory = self._territory_index[self.reps[rep].territory]
        if self.reps[rep].role == self._lead_role_name:
            self._rep_free(territory, rep)
        else:
            self.owners[territory].active.append(rep)
            self._update_capacity(territory)

    def _leave(self, call: _Call) -> None:
        """A rep leaves; one at work (or already handed the next lead) finishes that lead first."""
        (rep,) = call.args
        territory = self._territory_index[self.reps[rep].territory]
        if self.reps[rep].role == self._lead_role_name:
            self.leaving[rep] = True
            if not self.busy[rep]:
                self.first_touch[territory].free.remove(rep)
        else:
            self.owners[territory].active.remove(rep)
            self._update_capacity(territory)
