"""Automation tools month by month: adoption, the rep time they give back, and the technology-usage KPI."""

from __future__ import annotations

import numpy as np

from scenarios.model import AutomationLever, CrmAutomation, Scenario


def adoption_by_month(scenario: Scenario, lever: AutomationLever) -> np.ndarray:
    """Share of work done with the tool in each horizon month (0 before it starts)."""
    start = scenario.month_index(lever.start_month)
    return np.array([lever.adoption_at(m - start) for m in range(scenario.horizon_months)])


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
