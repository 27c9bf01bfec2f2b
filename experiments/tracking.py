"""Experiment tracking behind a small interface: nothing by default, MLflow on request.

Only the main process logs (workers return plain results). ``NullTracker`` records nothing; ``MlflowTracker``
writes to an MLflow store, by default the SQLite file ``mlflow.db`` in the working directory with its artifacts in
``mlartifacts/`` beside it. A sweep is one parent run with one nested run per cell, found again on resume by tags,
so re-running a sweep never duplicates a run. The store is checked before any work (``make_tracker``): an
unknown scheme, a file that is not an SQLite database or a server that does not answer within seconds is one
line of error up front, and HTTP calls are not retried for minutes. Runs are found by tags holding hex digests
only, never by pasting a path into a filter. Two processes logging one sweep to one SQLite store at once: the
second is refused.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import pandas as pd
import yaml

from engine import Results
from experiments.cells import scenario_hash
from experiments.output import band_column
from scenarios import Scenario
from scenarios.loading import safe_yaml

T = TypeVar("T")
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "salesops"
#: Tags that find runs again: the sweep a parent stands for, the cell a child stands for, the folder a run wrote.
SWEEP_TAG, CELL_TAG, OUT_TAG = "salesops.sweep_key", "salesops.cell_key", "salesops.out"
#: Tag holding the SHA-256 of the folder's resolved path: what ``attach`` searches by.
OUT_KEY_TAG = "salesops.out_key"
#: Schemes of tracking URIs the store check knows; MLflow's database back-ends are SQLAlchemy URLs.
KNOWN_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
#: Seconds a tracking server has to answer the check before the work, and any later request.
SERVER_TIMEOUT = 5
#: Monthly percentiles logged as series besides every monthly mean (``simulate`` runs).
EXTRA_SERIES = (("bookings", "p10"), ("bookings", "p90"))


@dataclass
class RunRecord:
    """What one run logs: parameters, headline metrics, monthly series (step = month index), files and tags."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class NullTracker:
    """Records nothing: the default, so commands run the same with or without a tracking store."""

    active = False

    def open_sweep(self, name: str, key: str, params: dict[str, str]) -> set[str]:
        """Start (or resume) a sweep's parent run; the cell keys it already holds a finished run for."""
        return set()

    def log_run(self, record: RunRecord, failed: bool = False) -> str | None:
        """Log one run, nested in the open sweep if there is one; its run id."""
        return None

    def close_sweep(self, failed: bool, folder: Path | None = None) -> None:
        """End the sweep's parent run, with the sweep's own files as its artifacts."""

    def attach(self, out: Path, files: Iterable[Path], artifact_path: str, name: str) -> str | None:
        """Add files to the run that wrote ``out`` (or to a new run named ``name``); its run id."""
        return None


class TrackingError(RuntimeError):
    """A tracking store that cannot be used; the message is one line naming the URI."""


def check_store(uri: str) -> None:
    """Fail fast, before any work, on a tracking URI that cannot work: an unknown scheme, an SQLite file that is
    not a database or whose folder is missing, a server that does not answer within ``SERVER_TIMEOUT`` seconds.
    Later HTTP requests are not retried (MLflow's default retries a dead server for minutes)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(SERVER_TIMEOUT * 6))
    scheme = urllib.parse.urlsplit(uri).scheme.split("+")[0]
    if scheme not in KNOWN_SCHEMES:
        raise TrackingError(f"--tracking-uri {uri}: unknown scheme {scheme or '(none)'!r}; expected one of {', '.join(KNOWN_SCHEMES)} (e.g. sqlite:///mlflow.db)")
    if scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        if path is None:
            raise TrackingError(f"--tracking-uri {uri}: expected sqlite:///PATH")
        if not path.parent.is_dir():
            raise TrackingError(f"--tracking-uri {uri}: no such folder {path.parent}")
        if path.exists():
            try:
                with open(path, "rb") as handle:
                    header = handle.read(16)
            except OSError as error:
                raise TrackingError(f"--tracking-uri {uri}: cannot read {path} ({error.strerror or error})") from None
            if header and header != b"SQLite format 3\x00":  # SQLite would take a short file of anything as empty
                raise TrackingError(f"--tracking-uri {uri}: {path} is not a usable SQLite database (not an SQLite file)")
            try:
                with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=SERVER_TIMEOUT) as connection:
                    connection.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.Error as error:
                raise TrackingError(f"--tracking-uri {uri}: {path} is not a usable SQLite database ({error})") from None
    elif scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=SERVER_TIMEOUT):
                pass
        except urllib.error.HTTPError:
            pass  # something answers: MLflow's own errors, if any, come later and in one line
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise TrackingError(f"--tracking-uri {uri}: no tracking server answers within {SERVER_TIMEOUT} s ({reason})") from None


def _store_call(method: Callable[..., T]) -> Callable[..., T]:
    """A tracker method whose store failures (MLflow, SQLAlchemy, HTTP alike) become one TrackingError line."""

    @functools.wraps(method)
    def guarded(self: "MlflowTracker", *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except TrackingError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the store raises, the user needs one line
            raise TrackingError(f"tracking store {self.uri}: {tracking_message(error)}") from None

    return guarded


class MlflowTracker(NullTracker):
    """Logs to an MLflow tracking store through ``MlflowClient`` (no global active run). Any failure of the store
    is a TrackingError in one line."""

    active = True


    def __init__(self, uri: str = DEFAULT_TRACKING_URI, experiment: str = DEFAULT_EXPERIMENT):
        check_store(uri)
        from mlflow import MlflowClient

        self.uri = uri
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment, artifact_location=artifact_location(uri))
            )
        except Exception as error:  # noqa: BLE001 - MLflow and its SQLAlchemy raise many kinds; the user needs one line
            raise TrackingError(f"--tracking-uri {uri}: the store cannot be used ({tracking_message(error)})") from None
        self.parent: str | None = None
        self.sweep_lock: Any = None

    def _lock_sweep(self, key: str) -> None:
        """One process at a time logs a given sweep to an SQLite store (the lock is a file beside it, released by
        the kernel however the process ends); a second is refused, instead of both logging every cell."""
        if not self.uri.startswith("sqlite:///"):
            return
        handle = open(Path(self.uri.removeprefix("sqlite:///")).resolve().parent / f".salesops-sweep-{key}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise TrackingError(f"{self.uri}: another salesops process is logging this sweep to the store; wait for it") from None
        self.sweep_lock = handle

    @_store_call
    def open_sweep(self, name: str, key: str, params: dict[str, str]) -> set[str]:
        self._lock_sweep(key)
        existing = self._search(f"tags.`{SWEEP_TAG}` = '{key}'")
        if existing:
            self.parent = existing[0].info.run_id
            self.client.update_run(self.parent, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=name, tags={SWEEP_TAG: key, "salesops.kind": "sweep"})
            self.parent = run.info.run_id
            self._log_batch(self.parent, params=params)
        finished = set()
        for child in self._search(f"tags.mlflow.parentRunId = '{self.parent}'"):
            cell = child.data.tags.get(CELL_TAG)
            if child.info.status == "FINISHED" and cell and cell not in finished:
                finished.add(cell)
            else:  # killed while logging, failed (it is run again), or a duplicate: one run per cell stays
                self.client.delete_run(child.info.run_id)
        return finished

    @_store_call
    def log_run(self, record: RunRecord, failed: bool = False) -> str | None:
        tags = dict(record.tags)
        if self.parent:
            tags["mlflow.parentRunId"] = self.parent
        run_id = self.client.create_run(self.experiment_id, run_name=record.name, tags=tags).info.run_id
        self._log_batch(run_id, record.params, record.metrics, record.series)
        for path in record.files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
        return run_id

    @_store_call
    def close_sweep(self, failed: bool, folder: Path | None = None) -> None:
        if self.parent is None:
            return
        if folder is not None:
            for name in ("results.csv", "summary.csv", "sweep.yaml"):
                if (folder / name).is_file():
                    self.client.log_artifact(self.parent, str(folder / name))
        self.client.set_terminated(self.parent, "FAILED" if failed else "FINISHED")
        self.parent = None
        if self.sweep_lock is not None:
            self.sweep_lock.close()
            self.sweep_lock = None

    @_store_call
    def attach(self, out: Path, files: Iterable[Path], artifact_path: str, name: str) -> str | None:
        runs = self._search(f"tags.`{OUT_KEY_TAG}` = '{out_key(out)}'")
        if runs:
            run_id = runs[0].info.run_id
        else:
            tags = {OUT_TAG: str(out.resolve()), OUT_KEY_TAG: out_key(out)}
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            self.client.set_terminated(run_id, "FINISHED")
        for path in files:
            self.client.log_artifact(run_id, str(path), artifact_path)
        return run_id

    def _search(self, filter_string: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string, max_results=1000, page_token=token, order_by=["attributes.start_time DESC"]
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _log_batch(
        self, run_id: str, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
        series: dict[str, list[float]] | None = None,
    ) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        entries = [Metric(_name(k), float(v), now, 0) for k, v in (metrics or {}).items() if v == v]
        entries += [Metric(_name(k), float(v), now, step) for k, values in (series or {}).items() for step, v in enumerate(values) if v == v]
        params_list = [Param(_name(k), str(v)[:6000]) for k, v in (params or {}).items()]
        for start in range(0, max(len(entries), 1), 1000):
            self.client.log_batch(run_id, metrics=entries[start:start + 1000], params=params_list if start == 0 else [])


def out_key(out: Path) -> str:
    """SHA-256 of a folder's resolved path: a tag value safe in any filter, whatever characters the path has."""
    return hashlib.sha256(str(out.resolve()).encode("utf-8", "surrogateescape")).hexdigest()


def tracking_message(error: BaseException) -> str:
    """The first line of a tracking error, bounded."""
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def artifact_location(uri: str) -> str | None:
    """For a SQLite store, ``mlartifacts/`` beside the database file; a server decides for itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def make_tracker(track: bool, uri: str | None, experiment: str = DEFAULT_EXPERIMENT) -> NullTracker:
    """MLflow when ``--track`` or ``--tracking-uri`` is given, else the null tracker; raises TrackingError (one
    line) when the store cannot be used, so commands call it before their work."""
    if not track and uri is None:
        return NullTracker()
    return MlflowTracker(uri or DEFAULT_TRACKING_URI, experiment)


def run_record(
    name: str, scenario: Scenario, seed: int, summary: pd.DataFrame, replications: int, files: Iterable[Path],
    params: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
) -> RunRecord:
    """The record of one simulation: its parameters and the horizon summary (KPI × statistic) as metrics."""
    metrics = {f"{kpi}_{stat}": value for kpi, row in summary.iterrows() for stat, value in row.items()}
    all_params = {"scenario": scenario.name, "scenario_hash": scenario_hash(scenario), "seed": seed, "replications": replications}
    return RunRecord(name, {k: str(v) for k, v in (all_params | (params or {})).items()}, metrics, {}, list(files), tags or {})


def monthly_series(results: Results) -> dict[str, list[float]]:
    """Every monthly mean, and the percentiles of ``EXTRA_SERIES``, as series (step = month index)."""
    bands = results.bands.set_index("month")
    series = {f"monthly/{column.removesuffix('_mean')}": bands[column].tolist() for column in bands if column.endswith("_mean")}
    series |= {f"monthly/{column}_{stat}": bands[band_column(bands, column, stat)].tolist() for column, stat in EXTRA_SERIES}
    return series


def track_simulation(
    tracker: NullTracker, source: str, overrides: list[str], scenario: Scenario, seed: int, results: Results,
    files: Iterable[Path], out: Path,
) -> str | None:
    """Log a ``simulate`` run: overrides, hashes, KPIs, monthly series and the files it wrote but the per-lead log
    (too large to copy into a store); its run id."""
    if not tracker.active:
        return None
    files = [path for path in files if path.name != "leads.csv"]
    params = {"source": source, "overrides": "; ".join(overrides)}
    if (calibration := calibration_sha256(source)) is not None:
        params["calibration_sha256"] = calibration
    tags = {OUT_TAG: str(out.resolve()), OUT_KEY_TAG: out_key(out), "salesops.kind": "simulate"}
    record = run_record(scenario.name, scenario, seed, results.summary, len(results.states), files, params, tags)
    record.series = monthly_series(results)
    return tracker.log_run(record)


def calibration_sha256(name_or_path: str | Path) -> str | None:
    """The data hash of the calibration file a scenario file references, if any (a tracking parameter)."""
    path = Path(name_or_path)
    if not path.is_file():
        return None
    try:
        reference = (safe_yaml(path.read_text(encoding="utf-8")) or {}).get("calibration")
        if reference is None:
            return None
        return json.loads((path.parent / str(reference)).read_text(encoding="utf-8"))["data"]["sha256"]
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _name(key: str) -> str:
    """MLflow names allow letters, digits, ``_ - . / : `` and spaces; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./: ]", "_", key)
