"""What every command shares at the edge: loading a scenario or failing with one line per problem, checking a
run's size before it starts, and turning the faults of files and tracking stores into one line."""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, NoReturn

import typer

from experiments.output import OutputError
from experiments.tracking import TrackingError, tracking_message
from scenarios import Scenario, ScenarioError, load_scenario

#: Leads one replication may simulate: the engine holds them all in memory (the shipped ``large`` has 0.9 million).
MAX_LEADS = 20_000_000
#: Reps a scenario may have at any time, counting every planned hire.
MAX_REPS = 200_000


def error_line(text: str) -> str:
    """``error: text`` as one line: characters that would break it (line breaks, control characters, which a file
    name or a value in a message may hold) are escaped."""
    return "error: " + "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def fail(lines: Iterable[str], code: int = 2) -> NoReturn:
    """Print each line as an error on stderr and exit with ``code``, never a traceback."""
    for line in lines:
        typer.echo(error_line(line), err=True)
    raise typer.Exit(code)


def load_scenario_or_exit(name_or_path: str, overrides: Iterable[str] = ()) -> Scenario:
    """The validated scenario, or exit 2 with one line per problem naming the file and key path."""
    try:
        return load_scenario(name_or_path, overrides)
    except ScenarioError as error:
        fail(f"{error.source}: {problem}" for problem in error.problems)


def require_finite(**options: float | None) -> None:
    """Exit 2 naming every numeric option given as infinity or NaN (typer's ranges let both through)."""
    bad = [f"--{name.replace('_', '-')}: expected a finite number, got {value}"
           for name, value in options.items() if value is not None and not math.isfinite(value)]
    if bad:
        fail(bad)


@contextmanager
def edge_errors() -> Iterator[None]:
    """Output folders and tracking stores that cannot be used, as one line and their exit code."""
    try:
        yield
    except OutputError as error:
        fail([str(error)], error.code)
    except TrackingError as error:
        fail([str(error)])


def tracking_failed(error: Exception, out: Path) -> NoReturn:
    """A tracking store that failed after the work: one line, exit 1; the files written stay."""
    fail([f"tracking: {tracking_message(error)}; the results are kept in {out}"], code=1)


def estimated_size(scenario: Scenario) -> tuple[float, int]:
    """An upper estimate of one replication's leads (every lead source over the horizon, with trend and
    seasonality; an outbound source as if every rep of its role, hired or planned, prospected from the start) and
    of its reps (headcount at the start plus every planned hire)."""
    reps = {
        name: sum(role.headcount.values()) + sum(sum(plan.values()) for plan in role.hiring_plan.values())
        for name, role in scenario.roles.items()
    }
    leads = 0.0
    for source in scenario.lead_sources.values():
        scale = reps.get(source.produced_by, 0) if source.produced_by else 1
        growth = math.log1p(source.trend)
        for month in range(scenario.horizon_months):
            season = source.seasonality[(scenario.start.month - 1 + month) % 12]
            leads += source.monthly_volume * scale * season * math.exp(min(growth * month, 700.0))
    return leads, sum(reps.values())


def check_run_size_or_exit(scenario: Scenario, label: str, max_leads: float = MAX_LEADS) -> None:
    """Exit 2, before any work, when a scenario is too large to simulate: the estimate and the limit in one line."""
    leads, reps = estimated_size(scenario)
    if leads > max_leads:
        fail([f"{label}: about {leads:,.3g} leads per replication over {scenario.horizon_months} months, more than "
              f"the limit of {max_leads:,.0f} (the engine holds a replication's leads in memory); lower the "
              "lead volumes or the horizon"])
    if reps > MAX_REPS:
        fail([f"{label}: {reps:,} reps with every planned hire, more than the limit of {MAX_REPS:,}"])


def compact_number(value: float) -> str:
    """A KPI in a few characters, so tables fit a terminal: 34.4M, 182k, 36.0k, 1,068, 0.379; NaN as a dash."""
    if value != value:
        return "–"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:,.1f}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:,.0f}k" if magnitude >= 1e5 else f"{value / 1e3:.1f}k"
    return f"{value:,.0f}" if magnitude >= 100 else f"{value:,.3g}"
