"""What every hostile-input and fault test checks of a command's outcome, and how many cases it generates.

A command ends in one of two ways: exit 0 with a complete, consistent result (its folder's completeness marker
vouches for every file, JSON is strict, CSV written for people holds no formula cell), or exit 1/2 with only
``error:`` lines on stderr. Never a traceback, never a hang: each in-process run has a time limit.

``SALESOPS_FUZZ=1`` runs many more generated cases (400 per property, or ``SALESOPS_FUZZ_EXAMPLES``); the default
keeps ``make test`` quick.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from experiments.cli import app
from experiments.output import FORMULA_STARTS, check_complete

FUZZ = os.environ.get("SALESOPS_FUZZ") == "1"
#: Generated cases per property: modest by default, many under SALESOPS_FUZZ=1.
EXAMPLES = int(os.environ.get("SALESOPS_FUZZ_EXAMPLES", "400")) if FUZZ else 15
#: Seconds one in-process command may take before it counts as a hang.
HANG_SECONDS = 60
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=not FUZZ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
runner = CliRunner()


class Hang(Exception):
    """A command that ran past ``HANG_SECONDS``."""


@contextmanager
def time_limit(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Raise Hang in the main thread after ``seconds``."""
    def expired(signum: int, frame: object) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def invoke(*args: str):
    """The CLI run in this process, within the hang limit."""
    with time_limit():
        return runner.invoke(app, [str(arg) for arg in args])


def strict_json(path: Path) -> object:
    """The file parsed as strict JSON: ``NaN`` and ``Infinity`` are errors."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def formula_cells(path: Path) -> list[str]:
    """Cells of a CSV that a spreadsheet could run as formulas."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row if cell.startswith(FORMULA_STARTS)]


def assert_clean_ending(result, out: Path | None = None, people_csv: tuple[str, ...] = ()) -> str:
    """Exit 0 with a complete folder (strict JSON, safe CSV for people), or exit 1/2 with only ``error:`` lines.
    Returns ``ok`` or ``error`` for the test's statistics."""
    error = result.exception
    assert error is None or isinstance(error, SystemExit), f"traceback: {type(error).__name__}: {error}"
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        if out is not None:
            marker = check_complete(out)
            for name in marker["files"]:
                if name.endswith(".json"):
                    strict_json(out / name)
            for name in people_csv:
                if name in marker["files"]:
                    assert not formula_cells(out / name), f"{name}: formula cells written for people"
        return "ok"
    assert result.exit_code in (1, 2), f"exit {result.exit_code}: {result.output[-500:]}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "an error exit without a message"
    assert all(line.startswith("error: ") for line in lines), f"stderr not made of error lines: {lines[:3]}"
    assert all(len(line) < 2000 for line in lines), "an error line echoing a huge value"
    return "error"


def csv_text(rows: list[list[str]]) -> str:
    """Rows written as CSV text."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()
