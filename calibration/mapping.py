"""The mapping file: how one CRM export's columns and labels become the project's canonical fields.

A mapping is YAML read with ``yaml.safe_load`` and validated strictly (unknown keys are errors), so a typo in a
mapping is reported before any row is read. Shipped mappings for public data sets live in ``mappings/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from scenarios.loading import InputError, describe_validation_error, read_yaml_mapping, shipped_names

DATE_FIELDS = ("created_at", "closed_at", "first_response_at", "mql_at", "sql_at", "opportunity_at")
LABEL_FIELDS = ("segment", "territory", "source", "owner", "stage")


class CalibrationError(InputError):
    """Input that cannot be used; each problem names file, row, column or key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileOptions(_Strict):
    """How to read a CSV: separator, encoding and which cell texts mean "missing" besides an empty cell.

    Only empty cells are missing by default: pandas' defaults would read labels such as ``None`` or ``NA`` as
    missing, which silently changes categories (IBM's competitor type ``None``).
    """

    separator: str = Field(default=",", min_length=1)
    encoding: str = "utf-8"
    na_values: list[str] = Field(default_factory=list)


class Columns(_Strict):
    """Canonical field → export column. ``id`` and ``created_at`` are required (see ``Mapping.undated``)."""

    id: str | None = None
    created_at: str | None = None
    outcome: str | None = None
    closed_at: str | None = None
    stage: str | None = None
    amount: str | None = None
    owner: str | None = None
    segment: str | None = None
    territory: str | None = None
    source: str | None = None
    first_response_at: str | None = None
    mql_at: str | None = None
    sql_at: str | None = None
    opportunity_at: str | None = None
    cycle_days: str | None = Field(default=None, description="created → closed in days, for exports without dates")


class NumberFormat(_Strict):
    """How the export writes numbers: ``12,500.00`` is ``{thousands: ",", decimal: "."}``, ``12.500,00`` is
    ``{thousands: ".", decimal: ","}``, ``12 500`` is ``{thousands: " "}`` (any space, also a no-break one).
    Currency symbols (``$``, ``€``, …) and three-letter codes (``USD``) before or after the number are dropped."""

    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "'"] | None = None

    @model_validator(mode="after")
    def _distinct(self) -> "NumberFormat":
        if self.thousands == self.decimal:
            raise ValueError(f"number_format: thousands and decimal are both {self.decimal!r}")
        return self


class Join(_Strict):
    """A second file joined to the export on a key (an outer join: rows of either file without a partner are
    reported). ``indicator`` names a column added to the joined rows, holding ``both``, ``left_only`` (only in
    the export) or ``right_only`` (only in the second file), so that presence in the second file can be mapped
    to an outcome."""

    file: str = Field(description="path relative to the export's folder")
    key: str = Field(description="the column both files share")
    indicator: str | None = None
    file_options: FileOptions = Field(default_factory=FileOptions)


class RosterColumns(_Strict):
    """Rep roster columns: one row per rep and role, with start and (if they left) end date."""

    rep: str = "rep"
    role: str = "role"
    start_date: str = "start_date"
    end_date: str = "end_date"


class Lookup(_Strict):
    """A table an attribute is looked up in (many export rows to one of its rows), e.g. an account's sector."""

    file: str = Field(description="path relative to the export's folder")
    key: str = Field(description="the column both files share; unique in this file")
    file_options: FileOptions = Field(default_factory=FileOptions)


class Attribute(_Strict):
    """A further export column to analyse in ``salesops winloss`` (or to segment by), beside the canonical fields."""

    column: str
    kind: Literal["auto", "categorical", "numeric"] = Field(
        default="auto", description="auto: numeric when every cell is a number and there are more than 10 values")
    recorded: Literal["open", "close"] | None = Field(
        default=None, description="when the value is known: while the deal is open, or only at its close (leakage); "
        "unset: judged from the data")
    lookup: Lookup | None = None


class Mapping(_Strict):
    """A CRM export described in the project's terms."""

    description: str = ""
    file: FileOptions = Field(default_factory=FileOptions)
    join: Join | None = None
    entry: Literal["lead", "mql", "sql", "opportunity"] = Field(
        default="lead", description="the funnel step a row starts at"
    )
    columns: Columns
    outcome_values: dict[str, Literal["won", "lost", "open"]] = Field(
        default_factory=dict, description="export label → won / lost / open; the key '' stands for an empty cell"
    )
    date_format: str | None = Field(default=None, description="strftime format of every date column; detected if absent")
    date_formats: dict[str, str] = Field(default_factory=dict, description="per canonical field, overriding date_format")
    undated: bool = Field(default=False, description="the export has no dates: no arrivals, cycle time from cycle_days")
    row_ids: bool = Field(default=False, description="the export has no id column: rows are numbered 1, 2, …")
    require_amount_for_won: bool = Field(
        default=True, description="report won rows without a positive amount (left out of the deal-size fit only)"
    )
    number_format: NumberFormat = Field(default_factory=NumberFormat, description="separators of amounts and cycle_days")
    lost_after_days: PositiveFloat | None = Field(
        default=None, description="an open row older than this at the as-of date counts as lost (exports without lost records)"
    )
    roster: RosterColumns = Field(default_factory=RosterColumns)
    attributes: dict[str, Attribute] = Field(default_factory=dict, description="name → further column to analyse")
    lost_reason: str | None = Field(default=None, description="the export column with the reason a deal was lost")

    @model_validator(mode="after")
    def _consistent(self) -> "Mapping":
        problems = []
        if self.columns.id is None and not self.row_ids:
            problems.append("columns.id: required (or set row_ids: true for an export without ids)")
        if self.columns.created_at is None and not self.undated:
            problems.append("columns.created_at: required (or set undated: true for an export without dates)")
        if self.undated and any(getattr(self.columns, name) for name in DATE_FIELDS):
            problems.append("undated: true, yet date columns are mapped")
        if self.columns.outcome is not None and not self.outcome_values:
            problems.append("outcome_values: required to read columns.outcome (export label → won / lost / open)")
        if self.columns.cycle_days is not None and not self.undated:
            problems.append("columns.cycle_days: only for undated exports; dated ones derive it from created_at and closed_at")
        unknown = set(self.date_formats) - set(DATE_FIELDS)
        if unknown:
            problems.append(f"date_formats: unknown field(s) {sorted(unknown)}; expected some of {list(DATE_FIELDS)}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def mapped(self) -> dict[str, str]:
        """Canonical field → export column, for the fields this mapping maps."""
        return {field: column for field, column in self.columns.model_dump().items() if column is not None}


def shipped_mappings() -> list[str]:
    """Names of the mappings shipped with the package (for the public data sets and the generated export)."""
    return shipped_names("calibration", "mappings")


def load_mapping(name_or_path: str | Path) -> tuple[str, Mapping]:
    """A validated mapping, found by path or by the name of a shipped one; returns (source label, mapping)."""
    source, data = read_yaml_mapping(name_or_path, "calibration", "mappings", "mapping", CalibrationError)
    try:
        return source, Mapping.model_validate(data)
    except ValidationError as error:
        raise CalibrationError(source, describe_validation_error(error)) from None
