"""The data audit: every row of an export is either used, in canonical form, or quarantined with a reason.

Checks run in a fixed order and a row is quarantined by the first it fails, so each quarantined row carries
exactly one reason and ``rows_in == used + quarantined`` always holds. A bad value in a field that only some fits
need (the amount) does not quarantine the row: the row is used, and only the fits that need the field leave it
out (``FIELD_REASONS``; counted under ``field_issues`` and listed in the quarantine file with their scope). Facts that change how a used row is read
(an empty segment grouped as ``unspecified``, an event after the as-of date not yet known) are counted in
``notes``, never applied silently.

The as-of date includes its whole day: what happened before midnight at its end (``Audit.known_until``) is known,
rows created from then on are quarantined.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd

from calibration.mapping import DATE_FIELDS, LABEL_FIELDS, CalibrationError, Mapping
from calibration.reading import JOINED_ROW, ROW, RawExport, join_match_column

#: Reason codes of the quarantine, in the order the checks run.
REASONS: dict[str, str] = {
    "join_unmatched": "a row of the joined file whose key matches no row of the export",
    "duplicate_row": "an exact copy of an earlier row",
    "missing_id": "the id is empty",
    "duplicate_id": "the id appears in several rows with different values",
    "unknown_outcome": "the outcome label is not in the mapping's outcome_values",
    "missing_created_at": "created_at is empty",
    "bad_date": "a date cell cannot be read in the column's date format",
    "before_since": "created before the start of the calibration window (since)",
    "after_as_of": "created after the as-of date",
    "closed_without_date": "won or lost, but closed_at is empty",
    "closed_before_created": "closed_at is before created_at",
    "event_before_created": "a stage or first-response timestamp is before created_at",
    "bad_cycle_days": "cycle_days is not a non-negative number",
}

#: Reasons that concern one field: the row is used, and left out only of the fits that need that field.
FIELD_REASONS: dict[str, str] = {
    "bad_amount": "the amount is not a number (in the mapping's number_format)",
    "negative_amount": "the amount is negative",
    "won_without_amount": "won, but the amount is empty or not positive",
}
#: Label given to a row whose segment, territory, source, owner or stage is empty.
UNSPECIFIED = "unspecified"
#: Date formats tried, in order, when the mapping gives none; the one reading most cells wins.
CANDIDATE_FORMATS = (
    "ISO8601", "%d/%m/%Y", "%m/%d/%Y", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S", "%d.%m.%Y", "%d.%m.%Y %H:%M", "%d-%m-%Y", "%Y/%m/%d", "%Y%m%d",
)
#: An as-of date more than this many days after the latest date in the data is refused: the export says nothing
#: about that stretch, and censoring open deals at it would lengthen every cycle time.
MAX_AS_OF_GAP_DAYS = 31
DAY = pd.Timedelta(days=1)
_DETECTION_SAMPLE = 5_000
_SLUG = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Audit:
    """The audited export: ``used`` rows in canonical form, ``quarantine`` rows as read plus ``reason`` and
    ``detail``, and a ``summary`` (rows in, used, quarantined by reason, notes, files and their SHA-256)."""

    used: pd.DataFrame
    quarantine: pd.DataFrame
    summary: dict
    as_of: pd.Timestamp  # the as-of day (midnight at its start); NaT for an undated export
    mapping: Mapping
    field_quarantine: pd.DataFrame  # used rows with a bad field, as read, plus ``reason``, ``detail``, ``scope``

    @property
    def known_until(self) -> pd.Timestamp:
        """The moment the data are read at: the end of the as-of day."""
        return self.as_of + DAY

    def quarantine_rows(self) -> pd.DataFrame:
        """The quarantine file's rows: whole rows (scope ``row``), then used rows with one bad field (scope: the field)."""
        return pd.concat([self.quarantine.assign(scope="row"), self.field_quarantine], ignore_index=True)

    def to_dict(self) -> dict:
        """The audit file: rows in, used and quarantined (by reason), outcomes, notes, and the data's fingerprint."""
        keys = ("rows_in", "used", "quarantined", "by_reason", "field_issues", "outcomes", "notes")
        data = ("sha256", "files", "date_range", "as_of")
        return {**{key: self.summary[key] for key in keys},
                "data": {**{key: self.summary[key] for key in data}, "entry": self.mapping.entry}}


def plural(n: float, singular: str, plural_form: str | None = None) -> str:
    """A count with its noun in the right number: ``1 day``, ``2 days``, ``1,204 rows``."""
    number = f"{n:,}" if float(n).is_integer() else f"{n:,.1f}"
    return f"{number} {singular if n == 1 else (plural_form or singular + 's')}"


def slug(label: str) -> str:
    """A label as a scenario key: lower case, runs of other characters as ``_`` (``Fields Sales`` → ``fields_sales``)."""
    return _SLUG.sub("_", label.lower()).strip("_") or UNSPECIFIED


def _slugs(labels: pd.Series) -> np.ndarray:
    """``slug`` of each label, computed once per distinct label."""
    codes, distinct = pd.factorize(labels)
    return np.array([slug(label) for label in distinct], dtype=object)[codes]


class _Quarantine:
    """Collects the first failing reason of each row."""

    def __init__(self, n: int):
        self.reason = np.full(n, None, dtype=object)
        self.detail = np.full(n, None, dtype=object)

    @property
    def open(self) -> np.ndarray:
        """Rows not quarantined so far."""
        return pd.isna(self.reason)

    def flag(self, mask: np.ndarray | pd.Series, code: str, detail: str | Callable[[np.ndarray], pd.Series]) -> None:
        """Quarantine the rows of ``mask`` not quarantined yet; ``detail`` is a text, or a function of the rows'
        boolean mask giving one text per row (called only for the flagged rows: most exports have few)."""
        take = np.asarray(mask, dtype=bool) & self.open
        if not take.any():
            return
        self.reason[take] = code
        self.detail[take] = detail if isinstance(detail, str) else np.asarray(detail(take), dtype=object)


def audit(raw: RawExport, mapping: Mapping, as_of: date | None = None, since: date | None = None) -> Audit:
    """Check every row of ``raw`` against ``mapping``; events after the day ``as_of`` (default: the latest date in
    the data; a time of day is ignored) count as not yet happened, rows created after it, or before ``since``, are
    quarantined. An as-of more than ``MAX_AS_OF_GAP_DAYS`` after the data's latest date is refused."""
    frame = raw.frame
    columns = mapping.mapped()
    data_columns = [c for c in frame.columns if c not in (ROW, JOINED_ROW)]
    q = _Quarantine(len(frame))
    notes: list[str] = []

    if mapping.join is not None:
        match = frame[join_match_column(mapping)]
        key = frame[mapping.join.key].fillna("").astype(str)
        q.flag(match.eq("right_only"), "join_unmatched",
               lambda rows: f"only in {mapping.join.file} (joined row " + frame[JOINED_ROW][rows].astype(str)
               + f"): no export row has {mapping.join.key} = " + key[rows])
    _flag_duplicate_rows(frame, data_columns, q)

    ids = frame[ROW].astype(str) if mapping.row_ids else frame[columns["id"]]
    if not mapping.row_ids:
        q.flag(ids.isna(), "missing_id", f"id is empty (column {columns['id']!r})")
        _flag_duplicate_ids(ids, frame[ROW], q)

    outcome = _outcomes(frame, mapping, q)
    dates, formats = _dates(frame, mapping, q)
    latest = _latest(dates, q.open)
    as_of_ts = latest if as_of is None else pd.Timestamp(as_of).normalize()
    if as_of is not None and not pd.isna(latest) and (as_of_ts - latest).days > MAX_AS_OF_GAP_DAYS:
        raise CalibrationError("--as-of", [
            f"{as_of_ts.date()} is {plural((as_of_ts - latest).days, 'day')} after the latest date in the data ({latest.date()}): "
            f"the export says nothing about that time (at most {plural(MAX_AS_OF_GAP_DAYS, 'day')} are accepted); "
            "give the date the export was taken"])
    known_until = as_of_ts + DAY
    if "created_at" in dates:
        created = dates["created_at"]
        if since is not None:
            q.flag(created < pd.Timestamp(since), "before_since",
                   lambda rows: "created_at " + created[rows].astype(str) + f" is before the window start {since}")
        q.flag(created >= known_until, "after_as_of",
               lambda rows: "created_at " + created[rows].astype(str) + f" is after the as-of date {as_of_ts.date()}")
        outcome, notes_after = _forget_after(dates, outcome, known_until, q.open)
        notes.extend(notes_after)
        _flag_order(dates, outcome, columns, q)
    cycle_days = _cycle_days(frame, mapping, q)
    amount, amount_issue, amount_detail = _amounts(frame, mapping, outcome)

    used_mask = q.open
    used = pd.DataFrame({"row": frame[ROW].to_numpy(), "id": ids.astype(str).to_numpy()})[used_mask]
    for field in DATE_FIELDS:
        used[field] = dates[field][used_mask].to_numpy() if field in dates else pd.NaT
        used[field] = pd.to_datetime(used[field])
    used["outcome"] = outcome[used_mask].to_numpy()
    used["amount"] = amount[used_mask].to_numpy()
    used["amount_issue"] = amount_issue[used_mask].to_numpy()
    used["cycle_days"] = cycle_days[used_mask].to_numpy()
    for field in LABEL_FIELDS:
        values = frame[columns[field]][used_mask] if field in columns else pd.Series(UNSPECIFIED, index=frame.index[used_mask])
        empty = int(values.isna().sum())
        if empty:
            notes.append(f"{field} empty in {plural(empty, 'used row')} (column {columns[field]!r}): grouped as {UNSPECIFIED!r}")
        values = values.fillna(UNSPECIFIED).astype(str)
        used[field] = _slugs(values) if field in ("segment", "territory", "source") else values.to_numpy()
    used["lost_undated"] = False
    if mapping.lost_after_days is not None and "created_at" in dates:
        stale = used["outcome"].eq("open") & ((known_until - used["created_at"]).dt.total_seconds() / 86_400 > mapping.lost_after_days)
        used.loc[stale, "outcome"] = "lost"
        used.loc[stale, "lost_undated"] = True
        notes.append(f"{plural(int(stale.sum()), 'row')} open for more than {plural(mapping.lost_after_days, 'day')} at the as-of date "
                     "counted as lost (lost_after_days; no close date)")
    used = used.reset_index(drop=True)
    if "created_at" in dates:
        notes.extend(_arrivals_end_note(used["created_at"], as_of_ts))

    quarantine = frame[~used_mask].copy()
    quarantine["reason"] = q.reason[~used_mask]
    quarantine["detail"] = q.detail[~used_mask]
    field_rows = used_mask & amount_issue.notna().to_numpy()
    field_quarantine = frame[field_rows].assign(reason=amount_issue[field_rows], detail=amount_detail[field_rows], scope="amount")
    field_issues = {"amount": {code: int(n) for code, n in amount_issue[field_rows].value_counts().items()}} if field_rows.any() else {}
    by_reason = {code: int(n) for code, n in pd.Series(q.reason[~used_mask]).value_counts().items()}
    summary = {
        "rows_in": len(frame),
        "used": len(used),
        "quarantined": len(quarantine),
        "by_reason": {code: by_reason[code] for code in REASONS if code in by_reason},
        "field_issues": field_issues,
        "outcomes": {o: int(n) for o, n in used["outcome"].value_counts().items()},
        "notes": notes,
        "files": raw.files,
        "sha256": raw.sha256,
        "as_of": None if pd.isna(as_of_ts) else str(as_of_ts.date()),
        "date_formats": formats,
        "date_range": _date_range(used),
    }
    assert summary["rows_in"] == summary["used"] + summary["quarantined"]
    return Audit(used, quarantine, summary, as_of_ts, mapping, field_quarantine)


def _flag_duplicate_rows(frame: pd.DataFrame, data_columns: list[str], q: _Quarantine) -> None:
    hashed = pd.Series(pd.util.hash_pandas_object(frame[data_columns], index=False).to_numpy(), index=frame.index)
    repeated = hashed.duplicated()
    if repeated.any():
        first_row = frame[ROW].groupby(hashed).transform("first")
        q.flag(repeated, "duplicate_row", lambda rows: "exact duplicate of row " + first_row[rows].astype(str))


def _flag_duplicate_ids(ids: pd.Series, rows: pd.Series, q: _Quarantine) -> None:
    candidates = ids.where(q.open)
    repeated = candidates.notna() & candidates.duplicated(keep=False)
    if repeated.any():
        listing = rows[repeated].astype(str).groupby(candidates[repeated]).transform(lambda r: ", ".join(r))
        detail = pd.Series("", index=ids.index, dtype=object)
        detail[repeated] = "id " + candidates[repeated].astype(str) + " is in rows " + listing + " with different values"
        q.flag(repeated, "duplicate_id", lambda rows: detail[rows])


def _outcomes(frame: pd.DataFrame, mapping: Mapping, q: _Quarantine) -> pd.Series:
    column = mapping.columns.outcome
    if column is None:
        return pd.Series("open", index=frame.index, dtype=object)
    labels = frame[column].fillna("")
    outcome = labels.map(mapping.outcome_values)
    q.flag(outcome.isna(), "unknown_outcome",
           lambda rows: "outcome label " + labels[rows].map(repr) + f" in column {column!r} is not in outcome_values")
    return outcome.astype(object)


def _dates(frame: pd.DataFrame, mapping: Mapping, q: _Quarantine) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Each mapped date column parsed (NaT where empty); unreadable cells quarantine their row."""
    dates, formats = {}, {}
    for field, column in mapping.mapped().items():
        if field not in DATE_FIELDS:
            continue
        text = frame[column]
        fmt = mapping.date_formats.get(field) or mapping.date_format or _detect_format(text, column)
        parsed = _parse(text, fmt)
        formats[field] = fmt
        if field == "created_at":
            q.flag(text.isna(), "missing_created_at", f"created_at is empty (column {column!r})")
        q.flag(text.notna() & parsed.isna(), "bad_date",
               lambda rows: f"{field}: cannot read " + text[rows].map(repr) + f" in column {column!r} as {fmt}")
        dates[field] = parsed
    return dates, formats


def _parse(text: pd.Series, fmt: str) -> pd.Series:
    parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _detect_format(text: pd.Series, column: str) -> str:
    """The candidate format that reads the most cells of a sample; an ambiguous day/month order is an error."""
    sample = text.dropna()
    sample = sample.sample(_DETECTION_SAMPLE, random_state=0) if len(sample) > _DETECTION_SAMPLE else sample
    if sample.empty:
        return "ISO8601"
    scores = {fmt: int(_parse(sample, fmt).notna().sum()) for fmt in CANDIDATE_FORMATS}
    best = max(scores.values())
    winners = [fmt for fmt, score in scores.items() if score == best]
    day_first = [fmt for fmt in winners if fmt.startswith("%d/")]
    month_first = [fmt for fmt in winners if fmt.startswith("%m/")]
    if day_first and month_first and "ISO8601" not in winners:
        raise CalibrationError("mapping", [f"date_formats: column {column!r} reads both day-first and month-first; "
                                           "give its format (e.g. date_format: '%d/%m/%Y')"])
    return winners[0]


def _latest(dates: dict[str, pd.Series], keep: np.ndarray) -> pd.Timestamp:
    """The day of the latest date in the kept rows (NaT without dates)."""
    latest = [series[keep].max() for series in dates.values()]
    latest = [t for t in latest if not pd.isna(t)]
    return max(latest).normalize() if latest else pd.NaT


def _forget_after(dates: dict[str, pd.Series], outcome: pd.Series, known_until: pd.Timestamp, keep: np.ndarray) -> tuple[pd.Series, list[str]]:
    """Events after the as-of day had not happened then: clear them, and reopen rows closed after it."""
    notes = []
    outcome = outcome.copy()
    as_of = (known_until - DAY).date()
    for field, series in dates.items():
        if field == "created_at":
            continue
        later = (series >= known_until) & keep
        if later.any():
            dates[field] = series.mask(later)
            notes.append(f"{field} after the as-of date {as_of} in {plural(int(later.sum()), 'row')}: not yet happened")
            if field == "closed_at":
                outcome[later] = "open"
    return outcome, notes


def _arrivals_end_note(created: pd.Series, as_of: pd.Timestamp) -> list[str]:
    """A note when no used row was created in the last days before the as-of date: arrivals end at the last one."""
    last = created.max()
    if pd.isna(last) or (as_of - last.normalize()).days < 1:
        return []
    return [f"created_at: the last used row was created on {last.date()}, {plural((as_of - last.normalize()).days, 'day')} before "
            f"the as-of date {as_of.date()}: arrivals are measured up to {last.date()} (an export holds the leads "
            "created until it was taken, so the days after its last lead are read as not recorded, not as zero leads)"]


def _flag_order(dates: dict[str, pd.Series], outcome: pd.Series, columns: dict[str, str], q: _Quarantine) -> None:
    created = dates["created_at"]
    if "closed_at" in dates:
        closed = dates["closed_at"]
        q.flag(outcome.isin(["won", "lost"]) & closed.isna(), "closed_without_date",
               lambda rows: outcome[rows].astype(str) + f" but closed_at (column {columns['closed_at']!r}) is empty")
        early = closed < created
        q.flag(early, "closed_before_created", lambda rows: "closed_at " + closed[rows].astype(str) + " is "
               + ((created[rows] - closed[rows]).dt.total_seconds() / 86_400).round(1).astype(str) + " days before created_at "
               + created[rows].astype(str))
    for field in ("first_response_at", "mql_at", "sql_at", "opportunity_at"):
        if field in dates:
            q.flag(dates[field] < created, "event_before_created",
                   lambda rows: f"{field} " + dates[field][rows].astype(str) + " is before created_at " + created[rows].astype(str))


def parse_numbers(text: pd.Series, mapping: Mapping) -> pd.Series:
    """Numbers as the export writes them (``number_format``; currency symbols and codes dropped); NaN where
    unreadable or infinite. Cells that read as plain numbers skip the cleaning (a clean export costs one
    ``to_numeric``)."""
    fmt = mapping.number_format
    plain = pd.to_numeric(text, errors="coerce").astype(float) if fmt.decimal == "." and fmt.thousands is None else None
    todo = text.notna() if plain is None else text.notna() & plain.isna()
    if not todo.any():
        return plain.where(np.isfinite(plain))
    cleaned = text[todo].str.replace(_CURRENCY, "", regex=True).str.strip()
    if fmt.thousands == " ":
        cleaned = cleaned.str.replace(r"[\s\u00a0\u202f]", "", regex=True)
    elif fmt.thousands is not None:
        cleaned = cleaned.str.replace(fmt.thousands, "", regex=False)
    if fmt.decimal != ".":
        cleaned = cleaned.str.replace(fmt.decimal, ".", regex=False)
    parsed = pd.Series(np.nan, index=text.index) if plain is None else plain.copy()
    parsed[todo] = pd.to_numeric(cleaned, errors="coerce").astype(float)
    return parsed.where(np.isfinite(parsed))  # an infinite amount is no amount


#: Currency symbols and three-letter codes at either end of a number.
_SYMBOLS = "$€£¥₹₽₩₺₪₫₦₱฿¢"
_CURRENCY = rf"^\s*(?:[A-Z]{{3}}\s*)?[{_SYMBOLS}]?|[{_SYMBOLS}]?(?:\s*[A-Z]{{3}})?\s*$"


def _amounts(frame: pd.DataFrame, mapping: Mapping, outcome: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Amounts read in the mapping's number format, with a reason (``FIELD_REASONS``) and detail where one is
    unusable: such a row stays in every fit but the deal-size one."""
    column = mapping.columns.amount
    nothing = pd.Series(None, index=frame.index, dtype=object)
    if column is None:
        return pd.Series(np.nan, index=frame.index), nothing, nothing.copy()
    text = frame[column]
    amount = parse_numbers(text, mapping)
    bad = text.notna() & amount.isna()
    negative = amount < 0
    issue = pd.Series(np.select([bad, negative], ["bad_amount", "negative_amount"], ""), index=frame.index)
    if mapping.require_amount_for_won:
        issue = issue.mask(issue.eq("") & outcome.eq("won") & ~(amount > 0), "won_without_amount")
    issue = issue.replace("", None)
    hint = "; set number_format in the mapping (e.g. {thousands: ',', decimal: '.'})" if bad.any() else ""
    flagged = issue.notna()
    detail = pd.Series(None, index=frame.index, dtype=object)
    detail[flagged] = "amount " + text[flagged].map(repr) + issue[flagged].map({
        "bad_amount": f" in column {column!r} is not a number{hint}", "negative_amount": f" in column {column!r} is negative",
        "won_without_amount": f" in column {column!r}: won, but empty or not positive"})
    return amount.where(~bad & ~negative), issue, detail


def _cycle_days(frame: pd.DataFrame, mapping: Mapping, q: _Quarantine) -> pd.Series:
    column = mapping.columns.cycle_days
    if column is None:
        return pd.Series(np.nan, index=frame.index)
    text = frame[column]
    days = parse_numbers(text, mapping)
    q.flag(text.notna() & ~(days >= 0), "bad_cycle_days",
           lambda rows: "cycle_days " + text[rows].map(repr) + f" in column {column!r} is not a non-negative number")
    return days


def _date_range(used: pd.DataFrame) -> dict[str, str | None]:
    stamps = pd.concat([used[field] for field in DATE_FIELDS]).dropna()
    if stamps.empty:
        return {"first": None, "last": None}
    first, last = stamps.min(), stamps.max()
    return {"first": _iso(first), "last": _iso(last)}


def _iso(stamp: datetime) -> str:
    return stamp.isoformat(sep=" ") if stamp != stamp.normalize() else str(stamp.date())
