"""Reps over time: who is on staff, from when, until when, and how productive each month.

The whole staffing history of a replication is known before the first lead arrives: hires start on the first
day of a month (plan month + hiring lag), each rep's leaving time is drawn at hiring from the attrition hazard
by tenure month, and a backfilled leaver is replaced on the first day of a month, ``backfill_lag_months`` counted
from the month after the one they left (leaving in March with a lag of 2: June 1). Reps on staff at the start are
taken as fully ramped and subject to the long-run hazard, unless the scenario's snapshot gives their tenure.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from engine.streams import Stream, generator
from scenarios.model import Role, Scenario, spread

#: Tenure given to reps on staff at the start: beyond any ramp or tenure-specific hazard.
VETERAN = -10_000


@dataclass(frozen=True)
class Rep:
    """One rep's employment: ``start_month`` is the horizon month of their tenure month 0 (negative for reps on staff
    at the start with a known tenure, VETERAN for those taken as fully ramped); ``hired`` within the horizon."""

    role: str
    territory: str
    start: float
    end: float
    start_month: int
    hired: bool


def roster(scenario: Scenario, months: np.ndarray, seed: int, replication: int) -> list[Rep]:
    """Every rep of every staffed role over the horizon, in a reproducible order."""
    reps: list[Rep] = []
    for role_index, (name, role) in enumerate(scenario.roles.items()):
        if role.span_of_control is None:
            rng = generator(seed, replication, Stream.ATTRITION, role_index)
            reps.extend(_role_roster(scenario, name, role, months, rng))
    return reps


def on_staff_at_start(scenario: Scenario, name: str) -> list[tuple[str, int]]:
    """(territory, start month) of a role's reps on the first day: the snapshot's, with their tenure, when it lists
    the role (a rep without a territory placed by lead share), else the role's ``headcount``, fully ramped."""
    snapshot = scenario.initial_state.snapshot
    reps = snapshot.reps if snapshot is not None else None
    if reps is None or name not in reps.role:
        role = scenario.roles[name]
        return [(territory, VETERAN) for territory in scenario.territories for _ in range(role.headcount.get(territory, 0))]
    mine = [(territory, tenure) for role, territory, tenure in zip(reps.role, reps.territory, reps.tenure_months) if role == name]
    unplaced = spread(sum(territory is None for territory, _ in mine), {t: spec.lead_share for t, spec in scenario.territories.items()})
    places = iter(territory for territory, count in unplaced.items() for _ in range(count))
    return [(territory or next(places), -math.floor(tenure)) for territory, tenure in mine]


def _role_roster(scenario: Scenario, name: str, role: Role, months: np.ndarray, rng: np.random.Generator) -> list[Rep]:
    horizon = scenario.horizon_months
    starts: list[tuple[str, int, bool]] = [(t, m, False) for t, m in on_staff_at_start(scenario, name)]  # creation order
    for month, territory, hires in scenario.requisitions(name):
        start_month = month + role.hiring_lag_months
        if start_month < horizon:
            starts.extend((territory, start_month, True) for _ in range(hires))

    def hire(territory: str, start_month: int, hired: bool) -> Rep:
        start = float(months[start_month]) if hired else 0.0
        end = _leaving_time(rng.exponential(), start_month, role, months)
        return Rep(name, territory, start, end, start_month, hired)

    reps = [hire(*start) for start in starts]
    if role.backfill:
        leavers = [(rep.end, i) for i, rep in enumerate(reps) if math.isfinite(rep.end)]
        heapq.heapify(leavers)
        while leavers:
            left, i = heapq.heappop(leavers)
            start_month = int(np.searchsorted(months, left, side="right")) + role.backfill_lag_months
            if start_month < horizon:
                reps.append(hire(reps[i].territory, start_month, True))
                if math.isfinite(reps[-1].end):
                    heapq.heappush(leavers, (reps[-1].end, len(reps) - 1))
    return reps


def _leaving_time(exposure: float, start_month: int, role: Role, months: np.ndarray) -> float:
    """When cumulative hazard reaches ``exposure`` (an Exp(1) draw), or infinity if not within the horizon."""
    for month in range(max(start_month, 0), len(months) - 1):
        hazard = role.hazard(month - start_month)
        if hazard <= 0.0:
            continue
        rate = math.inf if hazard >= 1.0 else -math.log1p(-hazard)
        if exposure <= rate:
            return float(months[month] + exposure / rate * (months[month + 1] - months[month]))
        exposure -= rate
    return math.inf


def productivity(rep: Rep, month: int, role: Role) -> float:
    """A rep's share of full productivity in a horizon month (0 when not on staff that month)."""
    return role.productivity(month - rep.start_month) if month >= rep.start_month else 0.0
