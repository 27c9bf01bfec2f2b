"""Shared test helpers: scenarios built from the shipped examples with overrides."""

from __future__ import annotations

import pytest

from scenarios import DAYS_PER_MONTH, Scenario, load_scenario


def mmc(arrivals_per_hour: float, servers: int, mean_service_hours: float = 1.0, months: int = 6, seed: int = 7) -> Scenario:
    """The shipped M/M/c scenario at the given rates."""
    return load_scenario(
        "mmc",
        [
            f"lead_sources.arrivals.monthly_volume={arrivals_per_hour * 24 * DAYS_PER_MONTH}",
            f"roles.server.headcount.only={servers}",
            f"roles.server.handling_hours.mean={mean_service_hours}",
            f"horizon_months={months}",
            f"seed={seed}",
        ],
    )


@pytest.fixture(scope="session")
def baseline() -> Scenario:
    return load_scenario("baseline")
