"""Turning a replication's recorded times into tidy tables, and replications into a summary with bands.

Monthly figures count events by the month they happen in (a lead by its arrival, an SQL by the end of its first
touch, a deal by its close). The column tables below are the documentation of the outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pandas as pd

from engine.calendar import days_in_months, total_days_in_months
from engine.automation import lever_cost_by_month
from engine.people import productivity
from engine.leads import Leads, Origin
from engine.simulation import LeadTimes, Replication

MONTHLY_COLUMNS: dict[str, str] = {
    "replication": "replication number (0-based)",
    "month": "calendar month, YYYY-MM",
    "leads": "leads that arrived",
    "mql": "leads that passed marketing qualification",
    "nurtured": "MQLs held back by lead scoring (never worked by a rep)",
    "sql": "MQLs qualified by their first touch (counted when the touch ends)",
    "opportunities": "SQLs that became opportunities (counted at the end of discovery)",
    "won": "opportunities won (counted at close)",
    "lost": "opportunities lost (counted at close)",
    "bookings": "value of deals won",
    "win_rate": "won / (won + lost); empty when nothing closed",
    "cycle_days_mean": "mean days from opportunity creation to won, over deals won",
    "response_hours_mean": "mean hours from arrival to first touch, as the lead felt it, over first touches begun",
    "response_hours_p90": "90th percentile of the same",
    "backlog_mean": "time-average number of MQLs waiting for a first touch",
    "pipeline": "open opportunities at month end",
    "pipeline_value": "value of open opportunities at month end",
    "usage_rate": "technology usage: mean adoption share of the automation tools started",
    "cost": "salaries, hiring costs and automation costs",
    "headcount_<role>": "reps of the role on staff at month end",
    "ramped_<role>": "the same in fully ramped equivalents (sum of ramp productivity)",
    "utilization_<role>": "first-touch role: busy hours / working hours; opportunity role: slots held / slots",
}

#: KPIs of the horizon summary; each is computed per replication over the whole horizon.
SUMMARY_KPIS = (
    "leads", "mql", "sql", "opportunities", "won", "lost", "bookings", "win_rate", "cycle_days_mean",
    "response_hours_mean", "response_hours_p90", "cost", "usage_rate",
)


class LeadState(IntEnum):
    """Where a lead is at the end of the horizon; every lead is in exactly one."""

    NOT_MQL = 0
    NURTURED = 1
    WAITING_FIRST_TOUCH = 2
    IN_FIRST_TOUCH = 3
    DISQUALIFIED = 4
    WAITING_OWNER = 5
    IN_DISCOVERY = 6
    NOT_OPPORTUNITY = 7
    OPEN_OPPORTUNITY = 8
    WON = 9
    LOST = 10


LEAD_LOG_COLUMNS: dict[str, str] = {
    "replication": "replication number (0-based)",
    "arrival_day": "arrival, in days since the scenario start (negative: carried in from before it)",
    "origin": "new (arrived in the horizon), waiting (an MQL carried in) or deal (an open deal carried in)",
    "snapshot_row": "the snapshot file's row of an item carried in from it (-1 otherwise)",
    "segment": "segment name",
    "territory": "territory name",
    "source": "lead source name",
    "state": "LeadState at the end of the horizon (lower case)",
    "touch_day": "first touch began (empty if it did not)",
    "response_hours": "wait to first touch as the lead felt it",
    "rep": "first-touch rep (roster index, -1 if none)",
    "sql_day": "qualified as SQL (empty if not)",
    "accept_day": "took an opportunity slot",
    "opportunity_day": "became an opportunity (end of discovery)",
    "close_day": "released its slot: won, lost or not an opportunity (may lie beyond the horizon)",
    "amount": "deal size if won",
}


@dataclass(frozen=True)
class ReplicationResult:
    """One replication: its monthly table, its horizon KPIs, the final state counts and, on request, the lead log."""

    monthly: pd.DataFrame
    totals: dict[str, float]
    states: dict[str, int]
    lead_log: pd.DataFrame | None = None


@dataclass(frozen=True)
class LeadOutcomes:
    """One replication's leads as drawn, the times recorded for them and the ``LeadState`` each ends in: what the
    lead log holds, as arrays, for a caller that reduces many replications to a few figures (a forecast)."""

    leads: Leads
    times: LeadTimes
    state: np.ndarray


def opportunity_created(leads: Leads, times: LeadTimes) -> np.ndarray:
    """When each lead became an opportunity (at the end of discovery; NaN if it did not or has not yet)."""
    created = np.where(leads.opportunity, times.opened, np.nan)
    return np.where(leads.origin == Origin.DEAL, leads.opened_at, created)


def lead_states(sim: Replication, times: LeadTimes) -> np.ndarray:
    """The final LeadState of each lead, derived from the recorded times alone."""
    leads, horizon = sim.leads, sim.horizon
    created = opportunity_created(leads, times)
    closed = times.close < horizon
    before_owner = leads.origin != Origin.DEAL  # deals carried in passed their first touch before the start
    state = np.full(len(leads), LeadState.IN_DISCOVERY, dtype=np.int8)
    conditions = [  # first match wins
        (~leads.mql, LeadState.NOT_MQL),
        (sim.nurtured, LeadState.NURTURED),
        (before_owner & np.isnan(times.touch), LeadState.WAITING_FIRST_TOUCH),
        (before_owner & np.isnan(times.touch_done), LeadState.IN_FIRST_TOUCH),
        (before_owner & ~times.sql, LeadState.DISQUALIFIED),
        (np.isnan(times.accept), LeadState.WAITING_OWNER),
        (closed & ~leads.opportunity, LeadState.NOT_OPPORTUNITY),
        (closed & leads.won, LeadState.WON),
        (closed, LeadState.LOST),
        (created < horizon, LeadState.OPEN_OPPORTUNITY),
    ]
    decided = np.zeros(len(leads), dtype=bool)
    for condition, value in conditions:
        take = condition & ~decided
        state[take] = value
        decided |= take
    return state


def summarize_replication(sim: Replication, times: LeadTimes, replication: int, keep_log: bool = False) -> ReplicationResult:
    """The tidy outputs of one replication; ``keep_log`` adds one row per lead (``LEAD_LOG_COLUMNS``)."""
    scenario, leads, months = sim.scenario, sim.leads, sim.months
    horizon_months = scenario.horizon_months
    state = lead_states(sim, times)
    won, lost = state == LeadState.WON, state == LeadState.LOST
    created = opportunity_created(leads, times)
    touched = ~np.isnan(times.touch)
    new = leads.origin == Origin.NEW

    def month_of(t: np.ndarray) -> np.ndarray:
        return np.searchsorted(months, t, side="right") - 1

    def count(t: np.ndarray, mask: np.ndarray | None = None, weights: np.ndarray | None = None) -> np.ndarray:
        keep = (t >= 0) & (t < sim.horizon) & (True if mask is None else mask)  # NaN compares False
        w = None if weights is None else weights[keep]
        return np.bincount(month_of(t[keep]), weights=w, minlength=horizon_months)[:horizon_months]

    table: dict[str, np.ndarray | list] = {
        "replication": np.full(horizon_months, replication),
        "month": [scenario.month_label(m) for m in range(horizon_months)],
        "leads": count(leads.time),
        "mql": count(leads.time, leads.mql),
        "nurtured": count(leads.time, sim.nurtured),
        "sql": count(times.touch_done, times.sql),
        "opportunities": count(created),
        "won": count(times.close, won),
        "lost": count(times.close, lost),
        "bookings": count(times.close, won, leads.amount),
    }
    closed = table["won"] + table["lost"]
    table["win_rate"] = np.divide(table["won"], closed, out=np.full(horizon_months, np.nan), where=closed > 0)
    cycle = times.close - created
    table["cycle_days_mean"] = _monthly_mean(count(times.close, won, cycle), table["won"])
    touch_month, response = month_of(times.touch[touched]), times.response_hours[touched]  # touches begin in the horizon
    touches = np.bincount(touch_month, minlength=horizon_months)
    table["response_hours_mean"] = _monthly_mean(np.bincount(touch_month, response, horizon_months), touches)
    by_month = np.split(response[np.argsort(touch_month, kind="stable")], np.cumsum(touches)[:-1])
    table["response_hours_p90"] = np.array([np.percentile(r, 90) if len(r) else np.nan for r in by_month])
    month_length = np.diff(months)
    table["backlog_mean"] = sim.waiting_area / month_length
    opened = np.flatnonzero(~np.isnan(created))
    month_end = months[1:, None]
    open_at_end = (created[opened] <= month_end) & (times.close[opened] > month_end)
    table["pipeline"] = open_at_end.sum(axis=1)
    table["pipeline_value"] = open_at_end.astype(float) @ leads.amount[opened]
    table["usage_rate"] = sim.usage_rate
    staffing = _staffing(sim, times)
    table["cost"] = staffing.pop("cost")
    table.update(staffing)
    monthly = pd.DataFrame(table)

    totals = {
        "leads": float(new.sum()),
        "mql": float((leads.mql & new).sum()),
        "sql": float(table["sql"].sum()),
        "opportunities": float(table["opportunities"].sum()),
        "won": float(won.sum()),
        "lost": float(lost.sum()),
        "bookings": float(leads.amount[won].sum()),
        "win_rate": float(won.sum() / (won.sum() + lost.sum())) if (won | lost).any() else np.nan,
        "cycle_days_mean": float(cycle[won].mean()) if won.any() else np.nan,
        "response_hours_mean": float(times.response_hours[touched].mean()) if touched.any() else np.nan,
        "response_hours_p90": float(np.percentile(times.response_hours[touched], 90)) if touched.any() else np.nan,
        "cost": float(monthly["cost"].sum()),
        "usage_rate": float(sim.usage_rate.mean()),
    }
    states = {member.name.lower(): int((state == member).sum()) for member in LeadState}
    log = _lead_log(sim, times, state, created, replication) if keep_log else None
    return ReplicationResult(monthly, totals, states, log)


def _lead_log(
    sim: Replication, times: LeadTimes, state: np.ndarray, opportunity_created: np.ndarray, replication: int
) -> pd.DataFrame:
    scenario, leads = sim.scenario, sim.leads
    names = {member.value: member.name.lower() for member in LeadState}
    return pd.DataFrame({
        "replication": replication,
        "arrival_day": leads.time,
        "origin": pd.Series(leads.origin).map({o.value: o.name.lower() for o in Origin}).to_numpy(),
        "snapshot_row": leads.snapshot_row,
        "segment": np.array(list(scenario.segments), dtype=object)[leads.segment],
        "territory": np.array(list(scenario.territories), dtype=object)[leads.territory],
        "source": np.array(list(scenario.lead_sources), dtype=object)[leads.source],
        "state": pd.Series(state).map(names).to_numpy(),
        "touch_day": times.touch,
        "response_hours": times.response_hours,
        "rep": times.rep,
        "sql_day": np.where(times.sql, times.touch_done, np.nan),
        "accept_day": times.accept,
        "opportunity_day": opportunity_created,
        "close_day": times.close,
        "amount": np.where(state == LeadState.WON, leads.amount, np.nan),
    })


def _monthly_mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.divide(total, count, out=np.full(len(total), np.nan), where=count > 0)


def _staffing(sim: Replication, times: LeadTimes) -> dict[str, np.ndarray]:
    """Headcount, ramped headcount and utilization per role, and the month's cost."""
    scenario = sim.scenario
    cost = np.zeros(scenario.horizon_months)
    headcount: dict[str, np.ndarray] = {}
    out: dict[str, np.ndarray] = {}
    for name, role in scenario.roles.items():
        if role.span_of_control is None:
            reps = [i for i, rep in enumerate(sim.reps) if rep.role == name]
            columns, role_cost = _staffed_role(sim, times, name, reps)
            headcount[name] = columns[f"headcount_{name}"]
            out.update(columns)
            cost += role_cost
    for name, role in scenario.roles.items():
        if role.span_of_control is not None:
            managed = sum(headcount.get(other, 0) for other in role.manages)
            headcount[name] = np.ceil(np.asarray(managed) / role.span_of_control).astype(int)
            out[f"headcount_{name}"] = headcount[name]
            out[f"ramped_{name}"] = headcount[name].astype(float)
            out[f"utilization_{name}"] = np.full(scenario.horizon_months, np.nan)
            cost += role.salary_monthly * headcount[name]
    staffed = sum(headcount.values())
    for lever in scenario.automation.values():
        cost += lever_cost_by_month(scenario, lever, staffed)
    out["cost"] = cost
    return out


def _staffed_role(sim: Replication, times: LeadTimes, name: str, reps: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One staffed role's monthly columns (headcount, ramped, utilization) and its cost (salaries, hiring)."""
    scenario, months = sim.scenario, sim.months
    role, horizon_months = scenario.roles[name], scenario.horizon_months
    start = np.array([sim.reps[i].start for i in reps])
    leave = np.array([sim.reps[i].end for i in reps])
    month_end = months[1:]
    on_staff_at_end = (start[:, None] < month_end) & (leave[:, None] >= month_end)
    productivity_by_month = np.array(
        [[productivity(sim.reps[i], m, role) for m in range(horizon_months)] for i in reps]
    ).reshape(len(reps), horizon_months)
    days_on_staff = days_in_months(start, leave, months)
    cost = role.salary_monthly * (days_on_staff / np.diff(months)).sum(axis=0)
    for i in reps:
        if sim.reps[i].hired:
            cost[sim.reps[i].start_month] += role.hiring_cost
    if name == scenario.lead_role:
        available = np.array([
            sim.calendar.working_days(np.maximum(start, b), np.minimum(leave, e)).sum() * 24.0
            for b, e in zip(months[:-1], month_end)
        ])
        utilization = _monthly_mean(sim.busy_hours, available)
    elif name == scenario.opportunity_role:
        slots = np.array([sim.slots[i] for i in reps]).reshape(len(reps), horizon_months)
        accepted = ~np.isnan(times.accept)
        held = total_days_in_months(times.accept[accepted], np.minimum(times.close[accepted], sim.horizon), months)
        utilization = _monthly_mean(held, (slots * days_on_staff).sum(axis=0))
    else:
        utilization = np.full(horizon_months, np.nan)
    columns = {
        f"headcount_{name}": on_staff_at_end.sum(axis=0),
        f"ramped_{name}": (productivity_by_month * on_staff_at_end).sum(axis=0),
        f"utilization_{name}": utilization,
    }
    return columns, cost


def summarize(replications: list[ReplicationResult]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """All monthly rows, the horizon summary (KPI × mean/p10/p50/p90) and the monthly bands: per month,
    ``<column>_mean``, ``<column>_p10``, ``<column>_p50`` and ``<column>_p90`` of every monthly column."""
    monthly = pd.concat([r.monthly for r in replications], ignore_index=True)
    summary = horizon_summary([r.totals for r in replications])
    grouped = monthly.drop(columns=["replication"]).groupby("month", sort=True)
    quantiles = grouped.quantile([0.1, 0.5, 0.9]).unstack()  # columns: (KPI, quantile)
    quantiles.columns = [f"{kpi}_p{round(q * 100)}" for kpi, q in quantiles.columns]
    means = grouped.mean().add_suffix("_mean")
    columns = [f"{kpi}_{stat}" for kpi in means.columns.str.removesuffix("_mean") for stat in ("mean", "p10", "p50", "p90")]
    bands = pd.concat([means, quantiles], axis=1)[columns]
    return monthly, summary, bands.reset_index()


def horizon_summary(totals: list[dict[str, float]]) -> pd.DataFrame:
    """Per horizon KPI (``SUMMARY_KPIS``): mean, P10, P50 and P90 over the replications' totals."""
    return quantile_bands(pd.DataFrame(totals)).loc[list(SUMMARY_KPIS)]


def quantile_bands(frame: pd.DataFrame) -> pd.DataFrame:
    """Per column of ``frame``: mean, P10, P50 and P90 over its rows."""
    return pd.DataFrame({
        "mean": frame.mean(), "p10": frame.quantile(0.1), "p50": frame.quantile(0.5), "p90": frame.quantile(0.9),
    })
