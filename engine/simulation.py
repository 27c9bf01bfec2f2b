"""One replication of a scenario as a SimPy discrete-event simulation.

Only what contends for a resource is an event: an MQL's arrival at its territory's first-touch queue, the end of
a first touch (the rep becomes free), an SQL's acceptance into an opportunity slot and the slot's release, reps
joining and leaving, and the first working minute of a day when leads wait overnight. Everything else about a
lead was drawn up front (``engine.leads``), and its stage path after acceptance is known at once, so the
simulation only records times; states and monthly figures are derived from those times afterwards.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import simpy
from scipy import stats

from engine.automation import away_share_by_month, conversion_multiplier, levers_used, usage_rate_by_month
from engine.calendar import WorkCalendar, month_starts
from engine.leads import Leads, draw_leads
from engine.people import Rep, productivity, roster
from scenarios.model import FollowUp, LeadScoring, Scenario, for_segment

#: Queue priority of a lead that carries no score: FIFO among equals, behind well-scored leads.
UNSCORED_PRIORITY = -0.5


@dataclass
class Pool:
    """A territory's queue for one role: waiting leads by (priority, arrival order) and free capacity."""

    queue: list = field(default_factory=list)
    free: list[int] = field(default_factory=list)  # first-touch reps that are idle
    active: list[int] = field(default_factory=list)  # opportunity reps on staff
    capacity: int = 0  # opportunity slots
    open: int = 0  # opportunities holding a slot
    wake_pending: bool = False
    waiting_area: float = 0.0  # ∫ queue length dt, for the time-average backlog
    last_change: float = 0.0


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
        latent = rho * stats.norm.ppf(1.0 - np.clip(leads.quality, 1e-12, 1 - 1e-12))
        score = stats.norm.cdf(latent + np.sqrt(1.0 - rho**2) * leads.score_noise)
        self.priority = np.where(scored, -score, UNSCORED_PRIORITY)
        self.nurtured = leads.mql & scored & (score < filter_share)
        segments = list(self.scenario.segments)
        sql_rate = np.array([for_segment(self.scenario.funnel.sql_rate, s) for s in segments])
        uplift = conversion_multiplier(self.scenario, used_by_lever, "sql")
        self.sql_probability = np.minimum(1.0, sql_rate[leads.segment] * uplift)

    # ----- the run -----

    def run(self) -> LeadTimes:
        env = self.env = simpy.Environment()
        n, territories = len(self.leads), len(self.scenario.territories)
        self.times = LeadTimes(
            touch=np.full(n, np.nan), touch_done=np.full(n, np.nan), sql=np.zeros(n, dtype=bool),
            accept=np.full(n, np.nan), close=np.full(n, np.nan), response_hours=np.full(n, np.nan),
            rep=np.full(n, -1),
        )
        self.first_touch = [Pool() for _ in range(territories)]
        self.owners = [Pool() for _ in range(territories)]
        self.busy = np.zeros(len(self.reps), dtype=bool)
        self.leaving = np.zeros(len(self.reps), dtype=bool)
        self.busy_hours = np.zeros(self.scenario.horizon_months)
        self.waiting_area = np.zeros((territories, self.scenario.horizon_months))
        self._territory_index = {name: i for i, name in enumerate(self.scenario.territories)}
        for index, rep in enumerate(self.reps):
            if rep.role in (self.scenario.lead_role, self.opportunity_role_name):
                self._at(rep.start, self._join, index)
                if rep.end < self.horizon:
                    self._at(rep.end, self._leave, index)
        env.process(self._month_boundaries())
        env.process(self._arrivals())
        env.run(until=self.horizon)
        self._snapshot_backlog(self.scenario.horizon_months - 1)
        return self.times

    def _at(self, time: float, callback, *args) -> None:  # noqa: ANN001
        event = simpy.Timeout(self.env, time - self.env.now)
        event.callbacks.append(partial(callback, *args))

    def _month(self) -> int:
        return bisect_right(self.months, self.env.now) - 1

    def _month_boundaries(self):  # noqa: ANN202 - a SimPy process
        for month in range(1, self.scenario.horizon_months):
            yield self.env.timeout(self.months[month] - self.env.now)
            self._snapshot_backlog(month - 1)
            for territory in range(len(self.owners)):
                self._update_capacity(territory)

    def _snapshot_backlog(self, month: int) -> None:
        for territory, pool in enumerate(self.first_touch):
            self._account_waiting(pool)
            self.waiting_area[territory, month] = pool.waiting_area
            pool.waiting_area = 0.0

    def _account_waiting(self, pool: Pool) -> None:
        pool.waiting_area += len(pool.queue) * (self.env.now - pool.last_change)
        pool.last_change = self.env.now

    def _arrivals(self):  # noqa: ANN202 - a SimPy process
        leads = self.leads
        entering = np.flatnonzero(leads.mql & ~self.nurtured)
        env = self.env
        for lead, time, territory, priority in zip(
            entering.tolist(), leads.time[entering].tolist(), leads.territory[entering].tolist(),
            self.priority[entering].tolist(),
        ):
            yield env.timeout(time - env.now)
            pool = self.first_touch[territory]
            self._account_waiting(pool)
            heapq.heappush(pool.queue, (priority, lead))
            self._dispatch_first_touch(territory)

    # ----- first touch (the role that works leads) -----

    def _dispatch_first_touch(self, territory: int) -> None:
        pool = self.first_touch[territory]
        if not (pool.queue and pool.free):
            return
        now = self.env.now
        if not self.calendar.is_open(now):
            if not pool.wake_pending:
                pool.wake_pending = True
                self._at(self.calendar.next_open(now), self._wake, territory)
            return
        self._account_waiting(pool)
        month = self._month()
        away = self.away_share[self.scenario.lead_role][month]
        while pool.queue and pool.free:
            _, lead = heapq.heappop(pool.queue)
            rep = pool.free.pop()
            self.busy[rep] = True
            speed = productivity(self.reps[rep], month, self.lead_role) * (1.0 - away)
            work = self.leads.handling_hours[lead] * self.handling_factor[lead] / speed
            self.busy_hours[month] += work
            self.times.touch[lead] = now
            self.times.rep[lead] = rep
            self.times.response_hours[lead] = (now - self.leads.time[lead]) * 24.0 * self.response_factor[lead]
            done = self.calendar.finish(now, work)
            if done < self.horizon:
                self._at(done, self._first_touch_done, territory, rep, lead)

    def _wake(self, territory: int, _event: simpy.Event) -> None:
        self.first_touch[territory].wake_pending = False
        self._dispatch_first_touch(territory)

    def _first_touch_done(self, territory: int, rep: int, lead: int, _event: simpy.Event) -> None:
        times, now = self.times, self.env.now
        times.touch_done[lead] = now
        decay = self.scenario.funnel.response_decay
        chance = self.sql_probability[lead] * (decay.multiplier(times.response_hours[lead]) if decay else 1.0)
        if self.leads.quality[lead] < chance:
            times.sql[lead] = True
            heapq.heappush(self.owners[territory].queue, (self.priority[lead], lead))
            self._dispatch_owner(territory)
        self.busy[rep] = False
        if self.leaving[rep]:
            return
        self.first_touch[territory].free.append(rep)
        self._dispatch_first_touch(territory)

    # ----- opportunities (the role that owns them) -----

    def slots(self, rep: int, month: int) -> int:
        role = self.scenario.roles[self.opportunity_role_name]
        share = productivity(self.reps[rep], month, role) * (1.0 - self.away_share[self.opportunity_role_name][month])
        return max(1, math.floor(role.open_opportunity_limit * share + 1e-9))

    def _update_capacity(self, territory: int) -> None:
        pool, month = self.owners[territory], self._month()
        pool.capacity = sum(self.slots(rep, month) for rep in pool.active)
        self._dispatch_owner(territory)

    def _dispatch_owner(self, territory: int) -> None:
        pool, leads, times, now = self.owners[territory], self.leads, self.times, self.env.now
        while pool.queue and pool.open < pool.capacity:
            _, lead = heapq.heappop(pool.queue)
            pool.open += 1
            times.accept[lead] = now
            close = now + leads.discovery_days[lead] + (leads.stage_days[lead] if leads.opportunity[lead] else 0.0)
            times.close[lead] = close
            if close < self.horizon:
                self._at(close, self._release, territory)

    def _release(self, territory: int, _event: simpy.Event) -> None:
        self.owners[territory].open -= 1
        self._dispatch_owner(territory)

    # ----- staffing -----

    def _join(self, rep: int, _event: simpy.Event) -> None:
        territory = self._territory_index[self.reps[rep].territory]
        if self.reps[rep].role == self.scenario.lead_role:
            self.first_touch[territory].free.append(rep)
            self._dispatch_first_touch(territory)
        else:
            self.owners[territory].active.append(rep)
            self._update_capacity(territory)

    def _leave(self, rep: int, _event: simpy.Event) -> None:
        territory = self._territory_index[self.reps[rep].territory]
        if self.reps[rep].role == self.scenario.lead_role:
            self.leaving[rep] = True
            if not self.busy[rep]:
                self.first_touch[territory].free.remove(rep)
        else:
            self.owners[territory].active.remove(rep)
            self._update_capacity(territory)
