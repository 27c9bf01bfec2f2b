"""Finished sweep cells on disk: one JSON file per cell, named by a hash of what determines its results.

A cell's key hashes its fully resolved scenario, its replications, its seed and the project version, so a re-run
finds the cells it already has and a changed scenario or a new release never reuses stale results. Files are
written atomically (``experiments.output``), so a crash leaves either the whole file or none.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from engine import ReplicationResult
from experiments.output import write_atomically
from scenarios import Scenario
from scenarios.json_values import json_ready


def project_version() -> str:
    """The installed salesops version, part of every cell key."""
    try:
        return metadata.version("salesops")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def scenario_hash(scenario: Scenario) -> str:
    """SHA-256 of the scenario's canonical JSON (first 16 hex digits)."""
    return hashlib.sha256(canonical_json(scenario.model_dump(mode="json")).encode()).hexdigest()[:16]


def cell_key(scenario: Scenario, replications: int, seed: int) -> str:
    """What identifies a cell's results: scenario, replications, seed and project version (16 hex digits)."""
    identity = {"scenario": scenario.model_dump(mode="json"), "replications": replications, "seed": seed, "version": project_version()}
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:16]


@dataclass
class CellRecord:
    """A cell as stored: how it was made and, if it ran, its replications; or the error it raised."""

    key: str
    index: int
    levels: dict[str, Any]
    overrides: list[str]
    replications: int
    seed: int
    scenario_hash: str
    error: str | None = None
    runs: list[ReplicationResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in ("key", "index", "levels", "overrides", "replications", "seed", "scenario_hash", "error")}
        data["version"] = project_version()
        data["runs"] = [
            {"totals": json_ready(run.totals), "states": run.states, "monthly": _frame_to_json(run.monthly)} for run in self.runs
        ]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CellRecord":
        runs = [
            ReplicationResult(
                _frame_from_json(run["monthly"]),
                {k: math.nan if v is None else v for k, v in run["totals"].items()},
                run["states"],
            )
            for run in data["runs"]
        ]
        fields = ("key", "index", "levels", "overrides", "replications", "seed", "scenario_hash", "error")
        return cls(**{name: data[name] for name in fields}, runs=runs)


class CellStore:
    """The ``cells/`` folder of a sweep."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str) -> CellRecord | None:
        """The stored cell, or None if there is none (or only an unreadable one, which is redone)."""
        try:
            return CellRecord.from_json(json.loads(self.path(key).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, record: CellRecord) -> Path:
        """Write the cell atomically (strict JSON: no NaN or infinity)."""
        return write_atomically(self.path(record.key), json.dumps(record.to_json(), allow_nan=False) + "\n")


def _frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    rows = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return {"columns": list(frame.columns), "dtypes": {c: str(t) for c, t in frame.dtypes.items()}, "data": rows}


def _frame_from_json(data: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(data["data"], columns=data["columns"]).astype(data["dtypes"])
