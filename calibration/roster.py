"""Reading a rep roster (rep, role, start date, end date if they left) for ramp and attrition.

A roster row that cannot be used is an error naming its row and column: a roster is small and hand-kept, and
a wrong start date would silently distort the ramp.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calibration.mapping import CalibrationError, FileOptions, Mapping
from calibration.reading import read_csv_text


def read_roster(path: str | Path, mapping: Mapping) -> pd.DataFrame:
    """The roster as ``rep, role, start_date, end_date`` (end empty: still on staff), dates ISO 8601."""
    path = Path(path)
    frame, _ = read_csv_text(path, FileOptions(separator=mapping.file.separator, encoding=mapping.file.encoding))
    names = mapping.roster.model_dump()
    absent = [f"roster.{field}: names column {column!r}, which is not in {path.name}" for field, column in names.items() if column not in frame.columns]
    if absent:
        raise CalibrationError("mapping", absent)
    roster = pd.DataFrame({field: frame[column] for field, column in names.items()})
    problems = []
    for field in ("rep", "role", "start_date"):
        for row in roster.index[roster[field].isna()][:5]:
            problems.append(f"row {row + 1}, column {names[field]!r}: empty")
    for field in ("start_date", "end_date"):
        parsed = pd.to_datetime(roster[field], format="ISO8601", errors="coerce")
        for row in roster.index[roster[field].notna() & parsed.isna()][:5]:
            problems.append(f"row {row + 1}, column {names[field]!r}: cannot read {roster.at[row, field]!r} as a date (YYYY-MM-DD)")
        roster[field] = parsed
    for row in roster.index[roster["end_date"] < roster["start_date"]][:5]:
        problems.append(f"row {row + 1}, column {names['end_date']!r}: before the start date")
    if problems:
        raise CalibrationError(str(path), problems)
    return roster
