"""Territory-design inputs: units, reps, an optional distance table and adjacency list, validated.

Readers take open text (so the caller, the only layer that touches files, decides where it comes from) and a
label used in messages. Every problem names the file, the row (counted as in a spreadsheet: the header is row 1,
blank rows count) and the column. Distances are kilometres along the great circle from latitude/longitude unless a
table is given. OR-Library p-median instances (``read_orlib_pmed``) read as inputs for a design that picks centres.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import shortest_path

EARTH_RADIUS_KM = 6371.0088
TRUE_WORDS = {"1", "true", "yes", "y", "locked"}
FALSE_WORDS = {"", "0", "false", "no", "n"}
#: Problems reported before giving up, so that a broken file gives a readable list, not thousands of lines.
MAX_PROBLEMS = 20


class InputError(ValueError):
    """Inputs that cannot be used; ``problems`` has one line per problem naming file, row and column."""

    def __init__(self, problems: list[str]):
        self.problems = problems[:MAX_PROBLEMS]
        more = len(problems) - len(self.problems)
        if more > 0:
            self.problems.append(f"… and {more} more problems")
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Table:
    """A CSV file as text cells, with its label for messages.

    ``rows`` are the non-blank data rows, padded to the header's width; ``numbers`` their row numbers in the file
    as a spreadsheet shows them (the header is row 1; blank rows count; a quoted cell spanning lines is one row).
    """

    label: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numbers: tuple[int, ...]

    @classmethod
    def parse(cls, text: str, label: str) -> "Table":
        """The table in ``text``; raises InputError for an empty file or rows with more cells than the header."""
        try:
            records = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
        except csv.Error as error:
            raise InputError([f"{label}: not readable as CSV ({error}; a cell may hold at most {csv.field_size_limit():,} characters)"]) from None
        if not records:
            raise InputError([f"{label}: empty file, expected a header row"])
        columns = tuple(cell.strip() for cell in records[0])
        repeated = sorted({column for column in columns if column and columns.count(column) > 1})
        if repeated:
            raise InputError([f"{label} row 1: column(s) {', '.join(map(repr, repeated))} appear more than once in the header"])
        rows, numbers, problems = [], [], []
        for number, record in enumerate(records[1:], start=2):
            cells = [cell.strip() for cell in record]
            if not any(cells):
                continue
            if len(cells) > len(columns) and any(cells[len(columns):]):
                extra = ", ".join(repr(cell) for cell in cells[len(columns):] if cell)
                problems.append(f"{label} row {number}: {len(cells)} cells, but the header has {len(columns)} columns (extra {extra})")
            rows.append(tuple(cells[: len(columns)]) + ("",) * (len(columns) - len(cells)))
            numbers.append(number)
        if problems:
            raise InputError(problems)
        return cls(label, columns, tuple(rows), tuple(numbers))

    def column(self, name: str) -> list[str] | None:
        if name not in self.columns:
            return None
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def where(self, row: int, column: str) -> str:
        """``file row N column 'x'`` for data row ``row`` (0-based)."""
        return f"{self.label} row {self.numbers[row]} column '{column}'"


@dataclass(frozen=True)
class TerritoryInputs:
    """Validated inputs of a territory design.

    ``units``: indexed by unit id, with the numeric attributes asked for, ``owner`` (rep id or None), ``locked``
    and, where given, ``lat``/``lon``. ``reps``: indexed by rep id, with ``weight`` (capacity weight) and
    ``home_unit``/``lat``/``lon`` where given. ``distance``: reps × units, or, when no rep is placed (p-median
    mode: the model picks centres among the units), units × units. ``adjacency``: pairs of neighbouring units.
    """

    units: pd.DataFrame
    reps: pd.DataFrame
    attributes: tuple[str, ...]
    distance: np.ndarray
    adjacency: tuple[tuple[str, str], ...] = ()
    distance_source: str = "great-circle km"

    @property
    def place_centres(self) -> bool:
        """True when no rep has a home: the design chooses the territory centres (p-median)."""
        return not self.reps["placed"].any()

    @property
    def has_coordinates(self) -> bool:
        return "lat" in self.units and bool(self.units["lat"].notna().all())


def read_inputs(
    units: Table,
    reps: Table,
    attributes: tuple[str, ...],
    distances: Table | None = None,
    adjacency: Table | None = None,
) -> TerritoryInputs:
    """Validate the tables and compute the distance matrix; raises InputError listing every problem."""
    problems = [_missing_id(table) for table in (units, reps) if "id" not in table.columns]
    if problems:
        raise InputError(problems)
    unit_frame = _read_units(units, attributes, problems)
    rep_frame = _read_reps(reps, unit_frame, problems)
    if problems:
        raise InputError(problems)
    owner_column = units.column("owner") or []
    for row, owner in enumerate(owner_column):
        if owner and owner not in rep_frame.index:
            problems.append(f"{units.where(row, 'owner')}: unknown rep {owner!r}; not an id in {reps.label}")
    for row, (locked, owner) in enumerate(zip(unit_frame["locked"], unit_frame["owner"])):
        if locked and owner is None:
            problems.append(f"{units.where(row, 'locked')}: a locked unit needs an owner")
    if problems:
        raise InputError(problems)
    if distances is not None:
        distance = _table_distances(distances, unit_frame, rep_frame, problems)
        source = f"table {distances.label}"
    else:
        distance = _great_circle(unit_frame, rep_frame, units, reps, problems)
        source = "great-circle km"
    pairs = _read_adjacency(adjacency, unit_frame, problems) if adjacency is not None else ()
    if problems:
        raise InputError(problems)
    return TerritoryInputs(unit_frame, rep_frame, attributes, distance, pairs, source)


def _missing_id(table: Table) -> str:
    """The message for a table without its ``id`` column, guessing a separator other than the comma."""
    header = ",".join(table.columns)
    other = next((name for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")) if sep in header), None)
    hint = f"; the header seems separated by {other}: write the file with commas" if other else ""
    return f"{table.label}: missing column 'id' (columns: {', '.join(table.columns)[:200]}){hint}"


def _require(table: Table, name: str, problems: list[str]) -> list[str]:
    values = table.column(name)
    if values is None:
        problems.append(f"{table.label}: missing column '{name}' (columns: {', '.join(table.columns)})")
        return []
    return values


def _ids(table: Table, problems: list[str]) -> list[str]:
    ids = _require(table, "id", problems)
    seen: dict[str, int] = {}
    for row, value in enumerate(ids):
        if not value:
            problems.append(f"{table.where(row, 'id')}: missing id")
        elif value in seen:
            problems.append(f"{table.where(row, 'id')}: duplicate id {value!r} (first at row {table.numbers[seen[value]]})")
        else:
            seen[value] = row
    return ids


def _numbers(table: Table, name: str, problems: list[str], required: bool, minimum: float | None = None) -> np.ndarray:
    """A numeric column; empty cells are NaN unless ``required``; each bad cell is a problem."""
    values = table.column(name)
    if values is None:
        if required:
            problems.append(f"{table.label}: missing column '{name}' (columns: {', '.join(table.columns)})")
        return np.full(len(table.rows), np.nan)
    out = np.full(len(values), np.nan)
    for row, text in enumerate(values):
        if not text:
            if required:
                problems.append(f"{table.where(row, name)}: empty, expected a number")
            continue
        try:
            number = float(text)
        except ValueError:
            problems.append(f"{table.where(row, name)}: {text!r} is not a number")
            continue
        if not math.isfinite(number) or (minimum is not None and number < minimum):
            floor = f" ≥ {minimum:g}" if minimum is not None else ""
            problems.append(f"{table.where(row, name)}: {text!r} must be a finite number{floor}")
            continue
        out[row] = number
    return out


def _coordinates(table: Table, problems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    lat_name = "lat" if "lat" in table.columns else "latitude"
    lon_name = "lon" if "lon" in table.columns else "longitude"
    lat = _numbers(table, lat_name, problems, required=False)
    lon = _numbers(table, lon_name, problems, required=False)
    for row in range(len(table.rows)):
        if np.isnan(lat[row]) != np.isnan(lon[row]):
            missing = lat_name if np.isnan(lat[row]) else lon_name
            problems.append(f"{table.where(row, missing)}: empty while the other coordinate is given")
        elif not np.isnan(lat[row]) and (abs(lat[row]) > 90 or abs(lon[row]) > 180):
            problems.append(f"{table.where(row, lat_name)}: ({lat[row]}, {lon[row]}) is not a latitude/longitude")
    return lat, lon


def _read_units(table: Table, attributes: tuple[str, ...], problems: list[str]) -> pd.DataFrame:
    ids = _ids(table, problems)
    frame = pd.DataFrame(index=pd.Index(ids, name="unit"))
    for attribute in attributes:
        frame[attribute] = _numbers(table, attribute, problems, required=True, minimum=0.0)
    frame["lat"], frame["lon"] = _coordinates(table, problems)
    owners = table.column("owner")
    frame["owner"] = [value or None for value in owners] if owners is not None else None
    locked = table.column("locked") or [""] * len(ids)
    flags = []
    for row, text in enumerate(locked):
        word = text.lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            problems.append(f"{table.where(row, 'locked')}: {text!r} is not a yes/no flag (use true/false, 1/0, yes/no)")
        flags.append(word in TRUE_WORDS)
    frame["locked"] = flags
    if not ids and not problems:
        problems.append(f"{table.label}: no units")
    return frame


def _read_reps(table: Table, units: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    ids = _ids(table, problems)
    frame = pd.DataFrame(index=pd.Index(ids, name="rep"))
    weight = _numbers(table, "weight", problems, required=False, minimum=0.0)
    for row in np.flatnonzero(weight == 0):
        problems.append(f"{table.where(row, 'weight')}: a capacity weight must be positive")
    frame["weight"] = np.where(np.isnan(weight), 1.0, weight)
    frame["lat"], frame["lon"] = _coordinates(table, problems)
    homes = table.column("home_unit") or [""] * len(ids)
    for row, home in enumerate(homes):
        if home and home not in units.index:
            problems.append(f"{table.where(row, 'home_unit')}: unknown unit {home!r}")
        elif home and np.isnan(frame["lat"].iat[row]) and "lat" in units:
            frame.iloc[row, frame.columns.get_loc("lat")] = units.at[home, "lat"]
            frame.iloc[row, frame.columns.get_loc("lon")] = units.at[home, "lon"]
    frame["home_unit"] = [home or None for home in homes]
    frame["placed"] = frame["home_unit"].notna() | frame["lat"].notna()
    if frame["placed"].any() and not frame["placed"].all():
        for row in np.flatnonzero(~frame["placed"].to_numpy()):
            problems.append(f"{table.where(row, 'home_unit')}: this rep has no home_unit or lat/lon while others do; place every rep, or none (then the design picks centres)")
    if not ids and not problems:
        problems.append(f"{table.label}: no reps")
    return frame


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlam = p2 - p1, np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _great_circle(units: pd.DataFrame, reps: pd.DataFrame, unit_table: Table, rep_table: Table, problems: list[str]) -> np.ndarray:
    missing = np.flatnonzero(units["lat"].isna().to_numpy())
    for row in missing[:MAX_PROBLEMS]:
        problems.append(f"{unit_table.where(row, 'lat')}: empty; without a distance table every unit needs lat/lon")
    if len(missing):
        return np.zeros((0, 0))
    ulat, ulon = units["lat"].to_numpy(), units["lon"].to_numpy()
    if not reps["placed"].any():
        return haversine_km(ulat[:, None], ulon[:, None], ulat[None, :], ulon[None, :])
    for row in np.flatnonzero(reps["lat"].isna().to_numpy()):
        problems.append(f"{rep_table.where(row, 'lat')}: empty; without a distance table a rep needs lat/lon or a home_unit with them")
    return haversine_km(reps["lat"].to_numpy()[:, None], reps["lon"].to_numpy()[:, None], ulat[None, :], ulon[None, :])


def _table_distances(table: Table, units: pd.DataFrame, reps: pd.DataFrame, problems: list[str]) -> np.ndarray:
    """The reps × units (or units × units) matrix from ``from,to,distance`` rows; unit pairs count both ways."""
    sources = _require(table, "from", problems)
    targets = _require(table, "to", problems)
    values = _numbers(table, "distance", problems, required=True, minimum=0.0)
    unit_index = {unit: i for i, unit in enumerate(units.index)}
    rep_index = {rep: i for i, rep in enumerate(reps.index)}
    given: dict[tuple[str, str], float] = {}
    for row, (source, target) in enumerate(zip(sources, targets)):
        if source not in unit_index and source not in rep_index:
            problems.append(f"{table.where(row, 'from')}: {source!r} is neither a unit nor a rep id")
        if target not in unit_index:
            problems.append(f"{table.where(row, 'to')}: {target!r} is not a unit id")
        if not np.isnan(values[row]):
            given[(source, target)] = values[row]
    if problems:
        return np.zeros((0, 0))

    def lookup(source: str, target: str) -> float | None:
        if source == target:
            return 0.0
        return given.get((source, target), given.get((target, source)) if source in unit_index else None)

    origins: list[tuple[str, str | None]] = (
        [(unit, None) for unit in units.index] if not reps["placed"].any()
        else [(rep, reps.at[rep, "home_unit"]) for rep in reps.index]
    )
    matrix = np.full((len(origins), len(units)), np.nan)
    missing = 0
    for i, (origin, home) in enumerate(origins):
        for j, unit in enumerate(units.index):
            value = lookup(origin, unit)
            if value is None and home is not None:
                value = lookup(home, unit)
            if value is None:
                missing += 1
                if missing <= MAX_PROBLEMS:
                    via = f" (or from its home unit {home!r})" if home else ""
                    problems.append(f"{table.label}: no row gives the distance from {origin!r}{via} to unit {unit!r}")
            else:
                matrix[i, j] = value
    if missing > MAX_PROBLEMS:
        problems.append(f"{table.label}: {missing} pairs missing in all")
    return matrix


def _read_adjacency(table: Table, units: pd.DataFrame, problems: list[str]) -> tuple[tuple[str, str], ...]:
    first = _require(table, "unit", problems)
    second = _require(table, "neighbor", problems)
    pairs = []
    for row, (a, b) in enumerate(zip(first, second)):
        for column, value in (("unit", a), ("neighbor", b)):
            if value not in units.index:
                problems.append(f"{table.where(row, column)}: {value!r} is not a unit id")
        if a != b:
            pairs.append((a, b))
    return tuple(pairs)


def read_orlib_pmed(text: str, label: str) -> TerritoryInputs:
    """An OR-Library p-median instance as inputs for a design that picks ``p`` centres among ``n`` units.

    The format: ``n m p`` on the first line, then ``m`` lines ``i j cost`` (1-based nodes, an undirected edge; a
    repeated edge's last cost wins). Distances are all-pairs shortest paths; units are named ``1``…``n``, reps
    ``r0``…``r{p-1}``, with no attributes, owners or homes.
    """
    lines = [(number, line.split()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines or len(lines[0][1]) != 3 or not all(token.isdigit() for token in lines[0][1]):
        raise InputError([f"{label} line {lines[0][0] if lines else 1}: expected 'n m p' (three whole numbers)"])
    n, m, p = (int(token) for token in lines[0][1])
    problems = []
    if len(lines) - 1 != m:
        problems.append(f"{label}: the first line announces {m} edges, the file has {len(lines) - 1}")
    if not 1 <= p <= n:
        problems.append(f"{label} line {lines[0][0]}: p = {p} must be between 1 and n = {n}")
    weights = np.full((n, n), np.inf)
    for number, tokens in lines[1:]:
        try:
            i, j = int(tokens[0]), int(tokens[1])
            cost = float(tokens[2])
            if len(tokens) != 3 or not (1 <= i <= n and 1 <= j <= n) or not cost >= 0:
                raise ValueError
        except (ValueError, IndexError):
            problems.append(f"{label} line {number}: {' '.join(tokens)!r} is not 'i j cost' with nodes in 1..{n} and cost ≥ 0")
            continue
        weights[i - 1, j - 1] = weights[j - 1, i - 1] = cost
    if problems:
        raise InputError(problems)
    np.fill_diagonal(weights, 0.0)
    units = pd.DataFrame({"lat": np.nan, "lon": np.nan, "owner": None, "locked": False}, index=pd.Index([str(i + 1) for i in range(n)], name="unit"))
    reps = pd.DataFrame({"weight": 1.0, "lat": np.nan, "lon": np.nan, "home_unit": None, "placed": False}, index=pd.Index([f"r{k}" for k in range(p)], name="rep"))
    return TerritoryInputs(units, reps, (), shortest_path(weights, method="D", directed=False), distance_source=f"shortest paths in {label}")
