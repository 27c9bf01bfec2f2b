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


#: The files that take minutes, longest first. They start first, so that the suite's parallel workers (one file each
#: at a time) finish together instead of one of them starting a long file when the others are nearly done.
SLOWEST_FIRST = ("test_headcount_targets.py", "test_automation_check.py", "test_reliability_faults.py",
                 "test_headcount.py", "test_web_browser.py", "test_automation.py", "test_forecast.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def baseline() -> Scenario:
    return load_scenario("baseline")
