"""What every command shares at the edge: loading a scenario or failing with one line per problem."""

from __future__ import annotations

from typing import Iterable, NoReturn

import typer

from scenarios import Scenario, ScenarioError, load_scenario


def fail(lines: Iterable[str], code: int = 2) -> NoReturn:
    """Print each line as an error on stderr and exit with ``code``, never a traceback."""
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)


def load_scenario_or_exit(name_or_path: str, overrides: Iterable[str] = ()) -> Scenario:
    """The validated scenario, or exit 2 with one line per problem naming the file and key path."""
    try:
        return load_scenario(name_or_path, overrides)
    except ScenarioError as error:
        fail(f"{error.source}: {problem}" for problem in error.problems)


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
