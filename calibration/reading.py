"""Reading a CRM export (and the file joined to it) as text, exactly as written, with errors naming file and row.

Every cell is read as a string: parsing dates, numbers and labels is the audit's job, so that a bad cell
quarantines its row with a reason instead of failing the whole file or turning silently into a missing value.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from calibration.mapping import CalibrationError, FileOptions, Mapping

#: Column added to the raw frame: the 1-based data row in the export (the header is row 0).
ROW = "row"
#: Column added when a second file is joined: its own 1-based data row.
JOINED_ROW = "joined_row"
#: Separators a header is checked for when it reads as a single column.
SEPARATORS = (";", "\t", "|", ",")
#: Name of the join's match column when the mapping does not name one.
JOIN_MATCH = "join_match"


@dataclass(frozen=True)
class RawExport:
    """The export's cells as text (one row per data row, or per joined pair), and where they came from."""

    frame: pd.DataFrame
    files: dict[str, dict[str, object]]  # file name → {"sha256", "rows", "path"}

    @property
    def sha256(self) -> str:
        """One fingerprint of all input files (the export's own hash when there is one file)."""
        hashes = [info["sha256"] for info in self.files.values()]
        return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()


def read_csv_text(path: Path, options: FileOptions) -> tuple[pd.DataFrame, str]:
    """All cells of a CSV as stripped strings (missing: empty or listed in ``na_values``), and its SHA-256."""
    if not path.is_file():
        raise CalibrationError(str(path), ["no such file"])
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data.strip():
        raise CalibrationError(str(path), ["empty file: expected a header row and data rows"])
    try:
        text = data.decode(options.encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start)
        raise CalibrationError(
            str(path),
            [f"row {line}: byte 0x{data[error.start]:02x} is not valid {options.encoding}; "
             "set file.encoding in the mapping (e.g. latin-1)"],
        ) from None
    except LookupError:
        raise CalibrationError(str(path), [f"file.encoding: unknown encoding {options.encoding!r}"]) from None
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=options.separator, dtype=str, keep_default_na=False, na_filter=False,
            skipinitialspace=False,
        )
    except pd.errors.ParserError as error:
        raise CalibrationError(str(path), [f"not readable as CSV with separator {options.separator!r}: {error}"]) from None
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        likely = [sep for sep in SEPARATORS if sep != options.separator and sep in header]
        if likely:
            raise CalibrationError(str(path), [f"the header {header[:60]!r} reads as one column: looks "
                                               f"`{likely[0].encode('unicode_escape').decode()}`-separated: set `file.separator`"])
    if frame.empty:
        raise CalibrationError(str(path), ["no data rows: the file has a header only"])
    header = list(frame.columns)
    if len(options.separator) == 1:  # pandas renames a repeated column (a, a.1): read the header as written
        header = [column.strip() for column in next(csv.reader(io.StringIO(text), delimiter=options.separator), [])]
    frame.columns = [str(column).strip() for column in frame.columns]
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if duplicated:
        raise CalibrationError(str(path), [f"column(s) {duplicated} appear more than once in the header"])
    missing = set(options.na_values)
    for column in frame.columns:
        values = frame[column].str.strip()
        frame[column] = values.mask(values.eq("") | values.isin(missing))
    return frame, digest


def read_export(path: str | Path, mapping: Mapping, mapping_source: str = "mapping") -> RawExport:
    """The export named by ``path``, joined to the mapping's second file if any; checks mapped columns exist."""
    path = Path(path)
    frame, digest = read_csv_text(path, mapping.file)
    files = {path.name: {"path": str(path), "sha256": digest, "rows": len(frame)}}
    frame.insert(0, ROW, range(1, len(frame) + 1))
    if mapping.join is not None:
        frame = _join(frame, path, mapping, mapping_source, files)
    mapped = mapping.mapped()
    absent = [f"columns.{field}: names column {column!r}, which is not in {path.name}"
              for field, column in mapped.items() if column not in frame.columns]
    if absent:
        available = ", ".join(str(c) for c in frame.columns if c not in (ROW, JOINED_ROW))
        raise CalibrationError(mapping_source, [f"{problem} (columns: {available})" for problem in absent])
    return RawExport(frame, files)


def _join(frame: pd.DataFrame, path: Path, mapping: Mapping, mapping_source: str, files: dict) -> pd.DataFrame:
    join = mapping.join
    assert join is not None
    other_path = path.parent / join.file
    other, other_digest = read_csv_text(other_path, join.file_options)
    files[other_path.name] = {"path": str(other_path), "sha256": other_digest, "rows": len(other)}
    for name, table in ((path.name, frame), (other_path.name, other)):
        if join.key not in table.columns:
            raise CalibrationError(mapping_source, [f"join.key: names column {join.key!r}, which is not in {name}"])
    shared = (set(frame.columns) & set(other.columns)) - {join.key}
    if shared:
        raise CalibrationError(mapping_source, [f"join: column(s) {sorted(shared)} are in both {path.name} and {other_path.name}"])
    other.insert(0, JOINED_ROW, range(1, len(other) + 1))
    indicator = join_match_column(mapping)
    merged = frame.merge(other, on=join.key, how="outer", indicator=indicator, sort=False)
    merged[indicator] = merged[indicator].astype(str)
    merged[ROW] = merged[ROW].astype("Int64")
    merged[JOINED_ROW] = merged[JOINED_ROW].astype("Int64")
    return merged.sort_values([ROW, JOINED_ROW], na_position="last", kind="stable").reset_index(drop=True)


def join_match_column(mapping: Mapping) -> str:
    """The column that says whether a joined row was found in both files (``both``, ``left_only``, ``right_only``)."""
    return (mapping.join.indicator if mapping.join else None) or JOIN_MATCH
