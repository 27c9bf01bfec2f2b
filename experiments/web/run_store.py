"""Finding finished runs: simulation folders under the runs folder, and runs in the MLflow store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from experiments.output import MARKER, read_marker


def simulation_folders(root: Path) -> list[Path]:
    """Every finished simulation folder under ``root``, newest first: those whose completeness marker says
    ``simulate`` wrote them (hidden, unfinished folders skipped; MLflow's copies of a run's files have no marker)."""
    if not root.is_dir():
        return []
    found = [
        path.parent for path in root.rglob(MARKER)
        if not any(part.startswith(".") for part in path.relative_to(root).parts)
        and (read_marker(path.parent) or {}).get("command") == "simulate"
    ]
    return sorted(found, key=lambda folder: (folder / MARKER).stat().st_mtime, reverse=True)


def folder_row(folder: Path, root: Path) -> dict[str, Any]:
    """A simulation folder as the Runs table shows it."""
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        summary = {}
    kpis = summary.get("kpis", {})
    return {
        "id": str(folder.relative_to(root)), "kind": "simulation", "name": summary.get("scenario", ""), "status": "done",
        "progress": f"{summary.get('replications', '')} replications",
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((folder / "summary.json").stat().st_mtime)),
        "message": f"bookings mean {kpis.get('bookings', {}).get('mean', float('nan')):,.0f}" if "bookings" in kpis else "",
        "folder": str(folder),
    }


#: The store's listing, kept a few seconds: the Runs page asks every 1.5 s, the store need not answer as often.
_LISTED: dict[str, tuple[float, list[dict[str, Any]], str | None]] = {}
LISTING_SECONDS = 10.0


def mlflow_rows(uri: str, limit: int = 500) -> tuple[list[dict[str, Any]], str | None]:
    """Runs of every experiment in the store (newest first), and a problem reading it, if any; a listing younger
    than ``LISTING_SECONDS`` is given again."""
    listed = _LISTED.get(uri)
    if listed is None or time.monotonic() - listed[0] > LISTING_SECONDS:
        listed = _LISTED[uri] = (time.monotonic(), *_read_mlflow(uri, limit))
    return listed[1], listed[2]


def _read_mlflow(uri: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        client = MlflowClient(tracking_uri=uri)
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, max_results=limit, order_by=["attributes.start_time DESC"]) if experiments else []
    except (MlflowException, OSError) as error:
        return [], f"MLflow store {uri}: {str(error).splitlines()[0]}"
    rows = []
    for run in runs:
        tags = run.data.tags
        bookings = run.data.metrics.get("bookings_mean")
        rows.append({
            "id": run.info.run_id, "kind": f"mlflow {tags.get('salesops.kind', 'run')}", "name": run.info.run_name,
            "status": run.info.status.lower(), "progress": f"{run.data.params.get('replications', '')} replications",
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.info.start_time / 1000)),
            "message": f"bookings mean {bookings:,.0f}" if bookings is not None else "",
            "folder": tags.get("salesops.out", ""),
        })
    return rows, None
