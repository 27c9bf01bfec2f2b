"""The organisation as it stands on the first day: open deals, leads waiting for a first touch, reps on staff.

A snapshot is a CSV file (``pipeline.csv``, as ``salesops calibrate`` writes it) with one row per item:

``kind,id,segment,territory,stage,age_days,amount,owner,role,tenure_months``

- ``opportunity``: an open deal in ``stage`` (``discovery`` or the name of a funnel stage) for ``age_days`` days;
  ``amount`` its value if won (empty: drawn from the segment's deal size); ``territory`` empty: drawn by lead share.
- ``lead``: an MQL that has waited ``age_days`` days for its first touch.
- ``rep``: a rep of ``role`` on staff with ``tenure_months`` months of tenure (ramp and attrition follow it).

Only ``kind`` is required as a column; a column a row needs but the file lacks is reported for that row. Rows are
read here, checked one by one, and kept as columns; whether segments, territories, stages and roles exist is checked
against the scenario (``Scenario``), naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

from pydantic import Field

from scenarios.base import Frozen

COLUMNS = ("kind", "id", "segment", "territory", "stage", "age_days", "amount", "owner", "role", "tenure_months")
KINDS = ("opportunity", "lead", "rep")
DISCOVERY = "discovery"
#: Rows read at the most: a snapshot is an organisation's open work, not its history.
MAX_ROWS = 2_000_000


class SnapshotError(ValueError):
    """A snapshot file that cannot be used; ``problems`` holds one line per problem, naming row and column."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class OpenDeals(Frozen):
    row: list[int] = Field(default_factory=list)
    segment: list[str] = Field(default_factory=list)
    territory: list[str | None] = Field(default_factory=list)
    stage: list[str] = Field(default_factory=list)
    age_days: list[float] = Field(default_factory=list)
    amount: list[float | None] = Field(default_factory=list)


class WaitingLeads(Frozen):
    row: list[int] = Field(default_factory=list)
    segment: list[str] = Field(default_factory=list)
    territory: list[str | None] = Field(default_factory=list)
    age_days: list[float] = Field(default_factory=list)


class RepsOnStaff(Frozen):
    row: list[int] = Field(default_factory=list)
    role: list[str] = Field(default_factory=list)
    territory: list[str | None] = Field(default_factory=list)
    tenure_months: list[float] = Field(default_factory=list)


class Snapshot(Frozen):
    """A snapshot file's rows by kind, as columns; ``source`` names the file in messages, ``sha256`` its content."""

    source: str
    sha256: str
    deals: OpenDeals = Field(default_factory=OpenDeals)
    leads: WaitingLeads = Field(default_factory=WaitingLeads)
    reps: RepsOnStaff = Field(default_factory=RepsOnStaff)

    def reference_problems(self, segments: set[str], territories: set[str], stages: set[str], roles: set[str]) -> list[str]:
        """One line per row naming something the scenario does not have."""
        problems: list[str] = []

        def check(rows: list[int], values: list, column: str, known: set[str], what: str) -> None:
            for row, value in zip(rows, values):
                if value is not None and value not in known:
                    problems.append(f"{self.source}: row {row}, column {column}: unknown {what} {value!r}; expected one of {sorted(known)}")

        check(self.deals.row, self.deals.segment, "segment", segments, "segment")
        check(self.deals.row, self.deals.territory, "territory", territories, "territory")
        check(self.deals.row, self.deals.stage, "stage", stages | {DISCOVERY}, "stage")
        check(self.leads.row, self.leads.segment, "segment", segments, "segment")
        check(self.leads.row, self.leads.territory, "territory", territories, "territory")
        check(self.reps.row, self.reps.role, "role", roles, "role")
        check(self.reps.row, self.reps.territory, "territory", territories, "territory")
        return _at_most(problems)


def read_snapshot(path: Path) -> Snapshot:
    """Read and check a snapshot file; every unusable row raises, in one ``SnapshotError`` listing them all."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SnapshotError(source, [f"cannot read ({error.strerror or error})"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SnapshotError(source, [f"not valid UTF-8 at byte {error.start}"]) from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header or "kind" not in [h.strip() for h in header]:
        raise SnapshotError(source, [f"expected a header with the column 'kind' (columns: {', '.join(COLUMNS)})"])
    header = [h.strip() for h in header]
    duplicated = sorted({h for h in header if header.count(h) > 1})
    unknown = [h for h in header if h not in COLUMNS]
    if duplicated or unknown:
        raise SnapshotError(source, [f"column {h!r} appears more than once" for h in duplicated]
                            + [f"unknown column {h!r}; expected some of {', '.join(COLUMNS)}" for h in unknown])
    columns = {name: i for i, name in enumerate(header)}
    parts = {"opportunity": OpenDeals(), "lead": WaitingLeads(), "rep": RepsOnStaff()}
    values: dict[str, dict[str, list]] = {kind: {name: [] for name in type(part).model_fields} for kind, part in parts.items()}
    problems: list[str] = []
    for number, cells in enumerate(reader, start=2):
        if number - 1 > MAX_ROWS:
            raise SnapshotError(source, [f"more than {MAX_ROWS:,} rows"])
        if not any(cell.strip() for cell in cells):
            continue
        row = _Row(number, cells, columns, problems)
        kind = row.text("kind")
        if kind not in KINDS:
            row.problem("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
            continue
        if kind == "rep":
            fields = {"role": row.text("role", required=True), "territory": row.text("territory"),
                      "tenure_months": row.number("tenure_months", required=True)}
        else:
            fields = {"segment": row.text("segment", required=True), "territory": row.text("territory"),
                      "age_days": row.number("age_days", required=True)}
            if kind == "opportunity":
                fields["stage"] = row.text("stage", required=True)
                fields["amount"] = row.number("amount")
        if row.ok:
            values[kind]["row"].append(number)
            for name, value in fields.items():
                values[kind][name].append(value)
    if problems:
        raise SnapshotError(source, _at_most(problems))
    return Snapshot(source=source, sha256=hashlib.sha256(raw).hexdigest(),
                    deals=OpenDeals(**values["opportunity"]), leads=WaitingLeads(**values["lead"]),
                    reps=RepsOnStaff(**values["rep"]))


def _at_most(problems: list[str], shown: int = 20) -> list[str]:
    """The first ``shown`` problems, and how many more there are."""
    return problems[:shown] + ([f"… and {len(problems) - shown:,} more problems like these"] if len(problems) > shown else [])


class _Row:
    """One data row's cells, read by column name; problems are collected with the row and column named."""

    def __init__(self, number: int, cells: list[str], columns: dict[str, int], problems: list[str]):
        self.line, self.cells, self.columns, self.problems = number, cells, columns, problems
        self.ok = True

    def problem(self, column: str, message: str) -> None:
        self.ok = False
        self.problems.append(f"row {self.line}, column {column}: {message}")

    def text(self, column: str, required: bool = False) -> str | None:
        index = self.columns.get(column)
        value = self.cells[index].strip() if index is not None and index < len(self.cells) else ""
        if not value and required:
            self.problem(column, "missing" if index is not None else "missing (no such column)")
        return value or None

    def number(self, column: str, required: bool = False) -> float | None:
        value = self.text(column, required)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            self.problem(column, f"expected a number, got {value[:40]!r}")
            return None
        if not math.isfinite(number) or number < 0:
            self.problem(column, f"expected a finite number of at least 0, got {value[:40]!r}")
            return None
        return number
