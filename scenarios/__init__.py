"""The scenario vocabulary: validated, frozen descriptions of a sales organisation, and how to load them."""

from scenarios.loading import (
    ScenarioError,
    apply_overrides,
    load_scenario,
    read_scenario_data,
    shipped_scenarios,
    validate_scenario,
)
from scenarios.model import DAYS_PER_MONTH, Role, Scenario

__all__ = [
    "DAYS_PER_MONTH",
    "Role",
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "read_scenario_data",
    "shipped_scenarios",
    "validate_scenario",
]
