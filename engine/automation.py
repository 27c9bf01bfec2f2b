"""Automation tools month by month and lead by lead: adoption, the rep time they give back, the conversion they add,
and the technology-usage KPI."""

from __future__ import annotations

import numpy as np

from scenarios.model import AutomationLever, ConversionUplift, CrmAutomation, Scenario


def adoption_by_month(scenario: Scenario, lever: AutomationLever) -> np.ndarray:
    """Share of work done with the tool in each horizon month (0 before it starts)."""
    start = scenario.month_index(lever.start_month)
    return np.array([lever.adoption_at(m - start) for m in range(scenario.horizon_months)])


def lever_cost_by_month(scenario: Scenario, lever: AutomationLever, staffed: np.ndarray) -> np.ndarray:
    """What a tool costs in each horizon month: the one-time cost in its start month, then the monthly cost and the
    per-rep cost for the adopted share of ``staffed``, the reps on staff at each month end."""
    start = scenario.month_index(lever.start_month)
    cost = (np.arange(scenario.horizon_months) >= start) * (
        lever.monthly_cost + lever.monthly_cost_per_rep * adoption_by_month(scenario, lever) * staffed
    )
    cost[start] += lever.one_time_cost
    return cost


def levers_used(scenario: Scenario, adoption: np.ndarray, arrival_month: np.ndarray) -> np.ndarray:
    """(levers × leads) bool: a tool is used on a lead when the lead's adoption uniform for it lies below the tool's
    adoption share in the lead's arrival month (work carried in from before the start: the first month)."""
    used = np.zeros(adoption.shape, dtype=bool)
    for j, lever in enumerate(scenario.automation.values()):
        used[j] = adoption[j] < adoption_by_month(scenario, lever)[np.maximum(arrival_month, 0)]
    return used


def conversion_multiplier(scenario: Scenario, used: np.ndarray, step: str) -> np.ndarray | float:
    """Per lead, the factor on the conversion probability at a funnel step from the conversion-uplift tools used on
    it (several multiply); plain 1 when no tool targets the step."""
    factor: np.ndarray | float = 1.0
    for j, lever in enumerate(scenario.automation.values()):
        if isinstance(lever, ConversionUplift) and lever.step == step:
            factor = factor * np.where(used[j], 1.0 + lever.uplift, 1.0)
    return factor


def away_share_by_month(scenario: Scenario, role_name: str) -> np.ndarray:
    """Share of a role's working time not available for leads or opportunities, by month: admin (less what CRM
    automation frees) and prospecting."""
    kept = np.ones(scenario.horizon_months)
    for lever in scenario.automation.values():
        if isinstance(lever, CrmAutomation):
            kept *= 1.0 - lever.admin_time_freed * adoption_by_month(scenario, lever)
    role = scenario.roles[role_name]
    return role.admin_share * kept + role.prospecting_share


def usage_rate_by_month(scenario: Scenario) -> np.ndarray:
    """The technology-usage KPI: mean adoption over the tools that have started (0 before any)."""
    months = np.arange(scenario.horizon_months)
    adoptions = [
        np.where(months >= scenario.month_index(lever.start_month), adoption_by_month(scenario, lever), np.nan)
        for lever in scenario.automation.values()
    ]
    if not adoptions:
        return np.zeros(scenario.horizon_months)
    stacked = np.vstack(adoptions)
    started = ~np.isnan(stacked)
    return np.where(started.any(axis=0), np.nansum(stacked, axis=0) / np.maximum(started.sum(axis=0), 1), 0.0)
