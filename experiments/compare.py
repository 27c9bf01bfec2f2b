"""Paired comparisons of runs: the difference of each KPI, replication by replication, with a 95% interval.

Runs made with the same seed share their random numbers replication by replication (common random numbers), so
the difference B − A within replication r removes the noise both share; the interval is Student's t on those
differences. Runs are read from a ``simulate`` folder (``replications.csv``), a sweep cell file
(``cells/<key>.json``) or an MLflow run id (its ``replications.csv`` artifact).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from engine import SUMMARY_KPIS
from experiments.cells import CellStore
from experiments.output import OutputError, check_complete
from experiments.tracking import TrackingError, check_store, tracking_message

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class CompareError(ValueError):
    """A run that cannot be read; the message names it."""


@dataclass(frozen=True)
class RunData:
    """A run's KPIs per replication (index: replication), its label and seed."""

    label: str
    seed: int | None
    kpis: pd.DataFrame


def load_run(reference: str, tracking_uri: str) -> RunData:
    """A run from a folder written by ``simulate``, a sweep cell file, or an MLflow run id."""
    path = Path(reference)
    if path.is_dir():
        return _from_folder(path, reference)
    if path.is_file() and path.suffix == ".json":
        record = CellStore(path.parent).read(path.stem)
        if record is None or not record.ok:
            raise CompareError(f"{reference}: not a finished sweep cell")
        frame = pd.DataFrame([run.totals for run in record.runs])
        return RunData(f"{path.parent.parent.name} cell {record.index}", record.seed, frame)
    if RUN_ID.match(reference):
        return _from_mlflow(reference, tracking_uri)
    raise CompareError(f"{reference}: not a simulate output folder, a sweep cell file or an MLflow run id")


def _from_folder(path: Path, label: str) -> RunData:
    table = path / "replications.csv"
    if not table.is_file():
        raise CompareError(f"{table}: no such file (written by salesops simulate; re-run the simulation)")
    try:
        check_complete(path, ("replications.csv",))
    except OutputError as error:
        raise CompareError(str(error)) from None
    kpis = _kpis(table, str(table))
    try:
        seed = json.loads((path / "summary.json").read_text(encoding="utf-8")).get("seed")
    except (OSError, json.JSONDecodeError):
        seed = None
    return RunData(label, seed, kpis)


def _from_mlflow(run_id: str, tracking_uri: str) -> RunData:
    try:
        check_store(tracking_uri)
    except TrackingError as error:
        raise CompareError(str(error)) from None
    from mlflow import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        run = client.get_run(run_id)
        with tempfile.TemporaryDirectory(prefix="salesops-compare-") as folder:
            local = client.download_artifacts(run_id, "replications.csv", folder)
            kpis = _kpis(Path(local), f"MLflow run {run_id}: replications.csv")
    except CompareError:
        raise
    except Exception as error:  # noqa: BLE001 - MLflow, SQLAlchemy and HTTP errors alike: one line
        raise CompareError(f"MLflow run {run_id} ({tracking_uri}): {tracking_message(error)}") from None
    seed = run.data.params.get("seed")
    return RunData(f"{run.info.run_name} ({run_id[:8]})", int(seed) if seed is not None else None, kpis)


def _kpis(table: Path, label: str) -> pd.DataFrame:
    """A replications table: numeric KPI columns indexed by replication; CompareError naming what is wrong."""
    try:
        kpis = pd.read_csv(table)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise CompareError(f"{label}: not readable as CSV ({str(error).splitlines()[0][:200]})") from None
    if "replication" not in kpis:
        raise CompareError(f"{label}: no 'replication' column")
    for column in kpis.columns:
        if not pd.api.types.is_numeric_dtype(kpis[column]):
            raise CompareError(f"{label}: column {column!r} is not numeric")
    if kpis["replication"].duplicated().any():
        raise CompareError(f"{label}: a replication appears twice")
    return kpis.set_index("replication")


def paired_differences(a: RunData, b: RunData, kpis: tuple[str, ...] = SUMMARY_KPIS, confidence: float = 0.95) -> pd.DataFrame:
    """Per KPI: means of A and B, mean of B − A over replications both have, its interval, and whether it excludes 0."""
    rows = []
    common = a.kpis.index.intersection(b.kpis.index)
    for kpi in kpis:
        if kpi not in a.kpis or kpi not in b.kpis:
            continue
        both = pd.DataFrame({"a": a.kpis.loc[common, kpi], "b": b.kpis.loc[common, kpi]}).dropna()
        difference = (both["b"] - both["a"]).to_numpy(dtype=float)
        n = len(difference)
        mean = float(difference.mean()) if n else math.nan
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * difference.std(ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
        low, high = mean - half, mean + half
        rows.append({
            "kpi": kpi, "a": both["a"].mean(), "b": both["b"].mean(), "difference": mean, "ci_low": low, "ci_high": high,
            "relative": mean / both["a"].mean() if n and both["a"].mean() else math.nan, "n": n,
            "excludes_zero": bool(n >= 2 and (low > 0 or high < 0)),
        })
    return pd.DataFrame(rows)


def pairing_note(a: RunData, b: RunData) -> str | None:
    """A warning when the runs do not share random numbers, or share few replications."""
    common = len(a.kpis.index.intersection(b.kpis.index))
    if common < 2:
        return f"{a.label} and {b.label} share {common} replication(s): no interval"
    if a.seed is not None and b.seed is not None and a.seed != b.seed:
        return f"seeds differ ({a.seed} and {b.seed}): replications are paired but share no random numbers, so intervals are wider"
    return None

