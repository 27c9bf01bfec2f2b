"""Attributes: further export columns (product, sector, deal size…) read beside the canonical fields.

An attribute is a column of the export, or of a table it is looked up in by a key (an account's sector, an agent's
office). Cells stay text until an analysis asks for levels: a categorical attribute's levels are its labels, a
numeric one's are quantile bands. ``--segment-by`` uses the same levels as the funnel's segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.mapping import Attribute, CalibrationError, Mapping
from calibration.reading import RawExport, read_csv_text

#: Level of an empty cell.
MISSING = "missing"
#: A numeric attribute is read in this many quantile bands.
BANDS = 5
#: ``auto`` attributes are numeric when every cell is a number and they have more distinct values than this.
MAX_CODES = 10
#: The canonical label fields analysed as attributes too (named by their export column).
CANONICAL = ("segment", "territory", "source")


@dataclass(frozen=True)
class AttributeColumn:
    """One attribute over the rows: its level labels (bands for a numeric one), its numbers if numeric, and
    when its value is known."""

    name: str
    column: str
    kind: str  # "categorical" or "numeric"
    recorded: str | None  # "open", "close" or None (unknown: judged from the data)
    levels: pd.Series  # str labels, MISSING for an empty cell
    numbers: pd.Series | None  # float, NaN for an empty cell (numeric attributes)


def analysed_attributes(mapping: Mapping) -> dict[str, Attribute]:
    """The mapping's attributes, after the mapped canonical segment, territory and source (named by their column,
    left out when an attribute reads the same column)."""
    own = {spec.column for spec in mapping.attributes.values() if spec.lookup is None}
    mapped = mapping.mapped()
    canonical = {mapped[field]: Attribute(column=mapped[field], kind="categorical")
                 for field in CANONICAL if field in mapped and mapped[field] not in own}
    return canonical | dict(mapping.attributes)


def attribute_cells(raw: RawExport, mapping: Mapping, export: Path, source: str,
                    specs: dict[str, Attribute]) -> pd.DataFrame:
    """The attributes' cells (text, None when empty), one column per attribute, on ``raw.frame``'s index; lookups
    resolved. A column or key that is not there is an error naming the mapping key."""
    frame = raw.frame
    cells = pd.DataFrame(index=frame.index)
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    for name, spec in specs.items():
        if spec.lookup is None:
            _require(spec.column, frame, f"attributes.{name}.column", export.name, source)
            cells[name] = frame[spec.column]
            continue
        lookup = spec.lookup
        path = export.parent / lookup.file
        if (lookup.file, lookup.key) not in tables:
            table, _ = read_csv_text(path, lookup.file_options)
            _require(lookup.key, table, f"attributes.{name}.lookup.key", path.name, source)
            _require(lookup.key, frame, f"attributes.{name}.lookup.key", export.name, source)
            repeated = table[lookup.key][table[lookup.key].duplicated()].dropna()
            if len(repeated):
                raise CalibrationError(str(path), [f"column {lookup.key!r}: key {repeated.iloc[0]!r} is on several rows "
                                                   f"(row {repeated.index[0] + 1}); a lookup table needs one row per key"])
            tables[(lookup.file, lookup.key)] = table.dropna(subset=[lookup.key]).set_index(lookup.key)
        table = tables[(lookup.file, lookup.key)]
        _require(spec.column, table, f"attributes.{name}.column", path.name, source)
        cells[name] = frame[lookup.key].map(table[spec.column])
    return cells


def _require(column: str, table: pd.DataFrame, key: str, file: str, source: str) -> None:
    if column not in table.columns:
        available = ", ".join(str(c) for c in table.columns if c not in ("row", "joined_row"))
        raise CalibrationError(source, [f"{key}: names column {column!r}, which is not in {file} (columns: {available})"])


def attribute_column(name: str, spec: Attribute, cells: pd.Series, bands: int = BANDS) -> AttributeColumn:
    """The attribute's levels: labels, or quantile bands of its numbers (``Q1 [lo, hi]``…); an empty cell is
    ``missing``. A cell that is not a number in an attribute declared numeric is an error naming its row."""
    cells = cells.reset_index(drop=True)
    numbers = pd.to_numeric(cells, errors="coerce")
    bad = cells.notna() & numbers.isna()
    kind = spec.kind
    if kind == "auto":
        kind = "numeric" if not bad.any() and numbers.nunique() > MAX_CODES else "categorical"
    if kind == "categorical":
        return AttributeColumn(name, spec.column, kind, spec.recorded, cells.fillna(MISSING).astype(str), None)
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise CalibrationError(spec.column, [f"attribute {name!r} is numeric, yet the cell {cells.iloc[first]!r} "
                                             f"(used row {first + 1}) is not a number"])
    levels = pd.Series(MISSING, index=cells.index, dtype=object)
    known = numbers.notna()
    if known.any():
        codes = pd.qcut(numbers[known].rank(method="min"), bands, labels=False, duplicates="drop")
        groups = numbers[known].groupby(codes)
        labels = {code: f"Q{i + 1} [{_number(values.min())}, {_number(values.max())}]"
                  for i, (code, values) in enumerate(groups)}
        levels[known] = codes.map(labels)
    return AttributeColumn(name, spec.column, kind, spec.recorded, levels, numbers.astype(float))


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"


def segment_by(raw: RawExport, mapping: Mapping, export: Path, source: str, name: str) -> tuple[RawExport, Mapping]:
    """The export and mapping whose segment is the attribute ``name`` (its labels, or its quantile bands), so that
    the funnel is fitted per level of a driver."""
    spec = named_attribute(mapping, name, "--segment-by")
    cells = attribute_cells(raw, mapping, export, source, {name: spec})[name]
    column = attribute_column(name, spec, cells)
    if column.levels.nunique() < 2:
        raise CalibrationError("--segment-by", [f"attribute {name!r} has one level only ({column.levels.iloc[0]!r}): nothing to segment"])
    added = f"segment by {name}"
    frame = raw.frame.copy()
    frame[added] = column.levels.where(cells.reset_index(drop=True).notna(), None).to_numpy()
    columns = mapping.columns.model_copy(update={"segment": added})
    return RawExport(frame, raw.files), mapping.model_copy(update={"columns": columns})


def named_attribute(mapping: Mapping, name: str, option: str) -> Attribute:
    """The mapping's attribute ``name``; an unknown name is an error listing the known ones."""
    if name not in mapping.attributes:
        known = ", ".join(sorted(mapping.attributes)) or "none"
        raise CalibrationError(option, [f"{name!r} is not an attribute of the mapping (attributes: {known})"])
    return mapping.attributes[name]
