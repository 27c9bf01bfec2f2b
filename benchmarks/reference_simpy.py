"""The funnel model written the obvious way in SimPy: one process per lead, reps as Store tokens, slots as a
Container. Kept to measure the engine against (speed) and to check it (KPIs within Monte Carlo error).

It reads the same inputs as the engine (the scenario's leads and roster, drawn by ``engine.leads`` and
``engine.people``) and implements the queueing dynamics independently: first come, first served first touches
by reps of the lead's territory in their working hours, conversion decaying with response time, opportunity
slots held from acceptance to close. Lead scoring and automation are not modelled here: benchmark scenarios
without automation only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import simpy

from engine.automation import away_share_by_month
from engine.calendar import WorkCalendar, month_starts
from engine.leads import draw_leads
from engine.people import productivity, roster
from scenarios import Scenario
from scenarios.model import for_segment


@dataclass
class ReferenceTotals:
    leads: int = 0
    mql: int = 0
    sql: int = 0
    opportunities: int = 0
    won: int = 0
    lost: int = 0
    bookings: float = 0.0
    response_hours_sum: float = 0.0
    touched: int = 0
    events: int = 0

    @property
    def response_hours_mean(self) -> float:
        return self.response_hours_sum / max(self.touched, 1)


def run_reference(scenario: Scenario, seed: int, replication: int) -> ReferenceTotals:
    """One replication of the scenario, the obvious way; totals over the horizon."""
    if scenario.automation:
        raise ValueError("the reference model does not model automation levers")
    months = month_starts(scenario)
    horizon = float(months[-1])
    reps = roster(scenario, months, seed, replication)
    leads = draw_leads(scenario, months, reps, seed, replication)
    env = simpy.Environment()
    territories = len(scenario.territories)
    territory_index = {name: i for i, name in enumerate(scenario.territories)}
    lead_role_name, owner_role_name = scenario.lead_role, scenario.opportunity_role
    lead_role = scenario.roles[lead_role_name]
    calendar = WorkCalendar(lead_role.working_hours, scenario.start)
    away = {name: away_share_by_month(scenario, name) for name in scenario.roles}
    first_touch = [simpy.Store(env) for _ in range(territories)]
    slots = [simpy.Container(env, capacity=math.inf, init=0) for _ in range(territories)]
    leaving: set[int] = set()
    totals = ReferenceTotals(leads=len(leads), mql=int(leads.mql.sum()))
    sql_rate = np.array([for_segment(scenario.funnel.sql_rate, s) for s in scenario.segments])
    decay = scenario.funnel.response_decay

    def month_now() -> int:
        return int(np.searchsorted(months, env.now, side="right")) - 1

    def slot_count(index: int, month: int) -> int:
        owner = scenario.roles[owner_role_name]
        share = productivity(reps[index], month, owner) * (1.0 - away[owner_role_name][month])
        return max(1, math.floor(owner.open_opportunity_limit * share + 1e-9))

    def staff(index: int):  # noqa: ANN202 - a SimPy process: the rep's whole employment
        rep = reps[index]
        territory = territory_index[rep.territory]
        yield env.timeout(rep.start - env.now)
        if rep.role == lead_role_name:
            first_touch[territory].put(index)
        else:
            held = slot_count(index, month_now())
            yield slots[territory].put(held)
            month = month_now()
            while month + 1 < len(months) - 1 and months[month + 1] < rep.end:
                yield env.timeout(months[month + 1] - env.now)
                month = month_now()
                change = slot_count(index, month) - held
                if change > 0:
                    yield slots[territory].put(change)
                elif change < 0:
                    yield slots[territory].get(-change)
                held += change
        if rep.end < horizon:
            yield env.timeout(rep.end - env.now)
            if rep.role == lead_role_name:
                leaving.add(index)
                if index in first_touch[territory].items:
                    first_touch[territory].items.remove(index)
            else:
                yield slots[territory].get(held)

    def lead(i: int):  # noqa: ANN202 - a SimPy process: one lead's life
        territory = int(leads.territory[i])
        rep = yield first_touch[territory].get()
        start = calendar.next_open(env.now)
        yield env.timeout(start - env.now)
        response = (env.now - leads.time[i]) * 24.0
        totals.touched += 1
        totals.response_hours_sum += response
        month = month_now()
        speed = productivity(reps[rep], month, lead_role) * (1.0 - away[lead_role_name][month])
        yield env.timeout(calendar.finish(env.now, leads.handling_hours[i] / speed) - env.now)
        if rep not in leaving:
            first_touch[territory].put(rep)
        chance = sql_rate[leads.segment[i]] * (decay.multiplier(response) if decay else 1.0)
        if leads.quality[i] >= chance:
            return
        totals.sql += 1
        yield slots[territory].get(1)
        yield env.timeout(leads.discovery_days[i])
        if not leads.opportunity[i]:
            yield slots[territory].put(1)
            return
        totals.opportunities += 1
        yield env.timeout(leads.stage_days[i])
        if leads.won[i]:
            totals.won += 1
            totals.bookings += float(leads.amount[i])
        else:
            totals.lost += 1
        yield slots[territory].put(1)

    def arrivals():  # noqa: ANN202 - a SimPy process spawning one process per MQL
        for i in np.flatnonzero(leads.mql):
            yield env.timeout(leads.time[i] - env.now)
            env.process(lead(int(i)))

    for index, rep in enumerate(reps):
        if rep.role in (lead_role_name, owner_role_name):
            env.process(staff(index))
    env.process(arrivals())
    env.run(until=horizon)
    totals.events = next(env._eid)  # SimPy numbers every scheduled event
    return totals
