"""Running a sweep: every cell's replications on an executor, each finished cell stored as it ends and tracked.

Tasks are (cell, replication) pairs, so a pool stays busy however few the cells. Every cell runs with the same seed,
so replication r of every cell shares its random numbers (common random numbers): differences between cells are
paired. Only this process writes, holding the folder's lock: ``cells/<key>.json`` per finished cell (atomically),
then ``sweep.yaml``, ``results.csv`` and ``summary.csv`` as one set with its completeness marker, so the three always
describe one sweep and a second sweep into the same folder at once is refused. A re-run skips cells already stored
and logged; a cell that raised is recorded with its error and run again next time. Stored cells are logged to the tracker on a thread of their own, while the next ones run.
"""

from __future__ import annotations

import hashlib
import tempfile
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine import SUMMARY_KPIS, run_replication
from engine.results import horizon_summary
from experiments.cells import CellRecord, CellStore, canonical_json, cell_key, scenario_hash
from experiments.output import RunFiles, output_folder, write_replications
from experiments.runner import Executor
from experiments.sweep_spec import Cell, Sweep, describe_levels
from experiments.tracking import CELL_TAG, NullTracker, RunRecord, calibration_sha256, run_record


class SweepProgress:
    """Told what happens, for a progress bar; does nothing by default."""

    def start(self, cells: int, done: int, replications: int) -> None:
        """``cells`` in the design, ``done`` of them already stored, ``replications`` per cell."""

    def replication_done(self) -> None:
        """One replication of a pending cell finished."""

    def cell_done(self, failed: bool) -> None:
        """A pending cell finished (or failed)."""


@dataclass(frozen=True)
class CellTotals:
    """What the sweep's tables need of a stored cell: its error, or each replication's horizon KPIs (kept in memory
    instead of the whole cell, whose monthly tables are slow to read back and large for big sweeps)."""

    error: str | None
    totals: list[dict[str, float]]

    @classmethod
    def of(cls, record: CellRecord) -> "CellTotals":
        return cls(record.error, [run.totals for run in record.runs])


@dataclass(frozen=True)
class SweepOutcome:
    """What a run of the sweep did: cells run now, cells found stored, cells that failed, files written."""

    ran: int
    reused: int
    failed: int
    results: Path
    summary: Path


def run_sweep(
    sweep: Sweep, out: Path, pool: Executor, tracker: NullTracker | None = None, progress: SweepProgress | None = None,
) -> SweepOutcome:
    """Run the cells not yet stored in ``out/cells``, store each as it ends and log it (on the tracking thread),
    then write the tables. A tracking error stops the sweep at the next finished cell; what is stored stays."""
    with output_folder(out, "sweep") as files:
        return _run(sweep, files, pool, tracker or NullTracker(), progress or SweepProgress())


def _run(sweep: Sweep, files: RunFiles, pool: Executor, tracker: NullTracker, progress: SweepProgress) -> SweepOutcome:
    out = files.folder
    store = CellStore(out / "cells")
    replications = sweep.spec.replications
    keys = {cell.index: cell_key(cell.scenario, replications, sweep.seed) for cell in sweep.cells}
    cells_by_key = {key: cell for cell in reversed(sweep.cells) for key in [keys[cell.index]]}  # first cell of a key wins
    definition = sweep.spec.model_dump(mode="json", exclude_none=True) | {"seed": sweep.seed}
    sweep_key = hashlib.sha256(canonical_json(sorted(cells_by_key)).encode()).hexdigest()[:16]
    logged = tracker.open_sweep(sweep.spec.name, sweep_key, _sweep_params(sweep))
    stored = {key: store.read(key) for key in cells_by_key}
    finished = {key for key, record in stored.items() if record is not None and record.ok}
    cell_totals = {key: CellTotals.of(stored[key]) for key in finished}  # type: ignore[arg-type]
    pending = [key for key in cells_by_key if key not in finished]
    pending.sort(key=lambda k: cells_by_key[k].index)
    progress.start(len(cells_by_key), len(finished), replications)
    tasks = {(key, r): (cells_by_key[key].scenario, r, sweep.seed) for key in pending for r in range(replications)}
    partial: dict[str, dict[int, Any]] = {key: {} for key in pending}
    failed = 0
    # Cells are logged on a thread of their own, so that the tracking store's latency never holds up the results
    # coming in; a cell stored but not yet logged when the sweep is killed is logged when it is resumed.
    tracking = ThreadPoolExecutor(max_workers=1, thread_name_prefix="salesops-tracking")
    try:
        logs = [
            tracking.submit(_track, tracker, sweep, cells_by_key[key], stored[key])
            for key in sorted(finished - logged, key=lambda k: cells_by_key[k].index)  # stored before a crash
        ]
        for (key, replication), result, error in pool.run(run_replication, tasks):
            if key not in partial:  # the cell already failed: its other replications do not matter
                continue
            if error is None:
                partial[key][replication] = result
                progress.replication_done()
                if len(partial[key]) < replications:
                    continue
            cell = cells_by_key[key]
            record = CellRecord(
                key, cell.index, cell.levels, list(cell.overrides), replications, sweep.seed, scenario_hash(cell.scenario),
                error=None if error is None else f"replication {replication}: {type(error).__name__}: {error}",
                runs=[partial[key][r] for r in range(replications)] if error is None else [],
            )
            del partial[key]
            store.write(record)
            cell_totals[key] = CellTotals.of(record)
            done, still_logging = wait(logs, timeout=0)
            for log in done:
                log.result()  # raises the tracking error, if logging a cell failed
            logs = list(still_logging)
            if key not in logged:  # a cell whose file was lost but whose run is in the store is not logged twice
                logs.append(tracking.submit(_track, tracker, sweep, cell, record))
            failed += error is not None
            progress.cell_done(error is not None)
        for log in logs:
            log.result()
    finally:  # on an error or an interrupt, cells not yet logged are left for the resume
        tracking.shutdown(cancel_futures=True)
    files.yaml("sweep.yaml", definition)
    results_path, summary_path = write_tables(sweep, keys, cell_totals, files)
    files.commit()
    tracker.close_sweep(failed > 0, out)
    return SweepOutcome(len(pending), len(finished), failed, results_path, summary_path)


def write_tables(sweep: Sweep, keys: dict[int, str], cell_totals: dict[str, CellTotals], files: RunFiles) -> tuple[Path, Path]:
    """results.csv (cell × replication: factors and KPIs) and summary.csv (cell: status, KPI mean and P10/P50/P90)."""
    factors = list(sweep.spec.factors)
    result_rows, summary_rows = [], []
    for cell in sweep.cells:
        key = keys[cell.index]
        head = {"cell": cell.index, "cell_key": key, **{name: cell.levels[name] for name in factors}}
        if key not in cell_totals:
            summary_rows.append(head | {"status": "not run", "error": ""})
            continue
        record = cell_totals[key]
        summary = head | {"status": "failed" if record.error else "ok", "error": record.error or ""}
        if not record.error:
            for replication, totals in enumerate(record.totals):
                result_rows.append(head | {"replication": replication} | {kpi: totals[kpi] for kpi in SUMMARY_KPIS})
            stats = horizon_summary(record.totals)
            summary |= {f"{kpi}_{stat}": stats.loc[kpi, stat] for kpi in SUMMARY_KPIS for stat in stats.columns}
        summary_rows.append(summary)
    columns = ["cell", "cell_key", *factors, "replication", *SUMMARY_KPIS]
    results_path = files.csv("results.csv", pd.DataFrame(result_rows, columns=columns), people=True)
    summary_path = files.csv("summary.csv", pd.DataFrame(summary_rows), people=True)
    return results_path, summary_path


def _track(tracker: NullTracker, sweep: Sweep, cell: Cell, record: CellRecord) -> None:
    """Log one cell as a nested run: its levels and overrides, its horizon KPIs, and its replications as a file.

    Its monthly figures stay in the cell's file: each point of a monthly series is a row in the tracking store, and
    logging them (or the bands file they come from) would cost a cell more than a tenth of its time."""
    if not tracker.active:
        return
    params = {f"factor.{name}": str(value) for name, value in cell.levels.items()}
    params |= {"overrides": "; ".join(cell.overrides), "cell_key": record.key, "cell": str(cell.index)}
    name = f"{sweep.spec.name} #{cell.index}: {describe_levels(cell.levels)}"[:250]
    tags = {CELL_TAG: record.key}
    if not record.ok:
        tags["salesops.error"] = record.error[:5000]  # type: ignore[index]
        params |= {"scenario_hash": record.scenario_hash, "seed": str(sweep.seed)}
        tracker.log_run(RunRecord(name, params, tags=tags), failed=True)
        return
    with tempfile.TemporaryDirectory(prefix="salesops-cell-") as folder:
        files = [write_replications(record.runs, Path(folder))]
        summary = horizon_summary([run.totals for run in record.runs])
        tracker.log_run(run_record(name, cell.scenario, sweep.seed, summary, len(record.runs), files, params, tags))


def _sweep_params(sweep: Sweep) -> dict[str, str]:
    spec = sweep.spec
    params = {
        "sweep": spec.name, "scenario": spec.scenario, "set": "; ".join(spec.set), "factors": ", ".join(spec.factors),
        "cells": str(len(sweep.cells)), "replications": str(spec.replications), "seed": str(sweep.seed),
    }
    if (calibration := calibration_sha256(Path(sweep.source).parent / spec.scenario)) is not None:
        params["calibration_sha256"] = calibration
    return params
