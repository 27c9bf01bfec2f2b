"""Reps over time: who is on staff, from when, until when, and how productive each month.

The whole staffing history of a replication is known before the first lead arrives: hires start on the first
day of a month (plan month + hiring lag), each rep's leaving time is drawn at hiring from the attrition hazard
by tenure month, and a backfilled leaver is replaced on the first day of a month, ``backfill_lag_months`` counted
from the month after the one they left (leaving in March with a lag of 2: June 1). Reps on staff at the start are
taken as fully ramped and subject to the long-run hazard.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from engine.streams import Stream, generator
from scenarios.model import Role, Scenario

#: Tenure given to reps on staff at the start: beyond any ramp or tenure-specific hazard.
VETERAN = -10_000


@dataclass(frozen=True)
class Rep:
    """One rep's employment: ``start_month`` is the horizon month they started (VETERAN if on staff at the start)."""

    role: str
    territory: str
    start: float
    end: float
    start_month: int

    @property
    def hired(self) -> bool:
        return self.start_month != VETERAN


def roster(scenario: Scenario, months: np.ndarray, seed: int, replication: int) -> list[Rep]:
    """Every rep of every staffed role over the horizon, in a reproducible order."""
    reps: list[Rep] = []
    for role_index, (name, role) in enumerate(scenario.roles.items()):
        if role.span_of_control is None:
            rng = generator(seed, replication, Stream.ATTRITION, role_index)
            reps.extend(_role_roster(scenario, name, role, months, rng))
    return reps


def _role_roster(scenario: Scenario, name: str, role: Role, months: np.ndarray, rng: np.random.Generator) -> list[Rep]:
    horizon = scenario.horizon_months
    starts: list[tuple[str, int]] = []  # (territory, start month) in creation order
    for territory in scenario.territories:
        starts.extend((territory, VETERAN) for _ in range(role.headcount.get(territory, 0)))
    for month, territory, hires in scenario.requisitions(name):
        start_month = month + role.hiring_lag_months
        if start_month < horizon:
            starts.extend((territory, start_month) for _ in range(hires))

    def hire(territory: str, start_month: int) -> Rep:
        start = 0.0 if start_month == VETERAN else float(months[start_month])
        end = _leaving_time(rng.exponential(), start_month, role, months)
        return Rep(name, territory, start, end, start_month)

    reps = [hire(territory, start_month) for territory, start_month in starts]
    if role.backfill:
        leavers = [(rep.end, i) for i, rep in enumerate(reps) if math.isfinite(rep.end)]
        heapq.heapify(leavers)
        while leavers:
            left, i = heapq.heappop(leavers)
            start_month = int(np.searchsorted(months, left, side="right")) + role.backfill_lag_months
            if start_month < horizon:
                reps.append(hire(reps[i].territory, start_month))
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
