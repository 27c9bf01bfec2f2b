"""Writing a simulation's results to a folder: the tidy tables, the summary and the scenario that made them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from engine import ReplicationResult, Results
from scenarios import Scenario
from scenarios.json_values import json_ready


def write_results(results: Results, scenario: Scenario, seed: int, out: Path) -> dict[str, Path]:
    """Write monthly.csv, bands.csv, states.csv, summary.json, scenario.yaml (and leads.csv) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("monthly.csv", "bands.csv", "states.csv", "summary.json", "scenario.yaml")}
    results.monthly.to_csv(paths["monthly.csv"], index=False)
    results.bands.to_csv(paths["bands.csv"], index=False)
    results.states.to_csv(paths["states.csv"], index_label="replication")
    summary = {
        "scenario": scenario.name,
        "seed": seed,
        "replications": len(results.states),
        "kpis": {
            kpi: dict(row.items())
            for kpi, row in results.summary.to_dict(orient="index").items()
        },
    }
    paths["summary.json"].write_text(json.dumps(json_ready(summary), indent=2) + "\n", encoding="utf-8")
    if results.lead_log is not None:
        paths["leads.csv"] = out / "leads.csv"
        results.lead_log.to_csv(paths["leads.csv"], index=False)
    paths["scenario.yaml"].write_text(
        yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )
    return paths


def write_replications(runs: list[ReplicationResult], out: Path) -> Path:
    """replications.csv: one row per replication with its KPIs over the horizon, for paired comparisons."""
    path = out / "replications.csv"
    frame = pd.DataFrame([run.totals for run in runs])
    frame.insert(0, "replication", range(len(runs)))
    frame.to_csv(path, index=False)
    return path


def band_column(bands: pd.DataFrame, column: str, stat: str) -> str:
    """The bands column of a monthly column's statistic (``mean``, ``p10``, ``p50``, ``p90``)."""
    name = f"{column}_{stat}"
    if name not in bands.columns:
        raise KeyError(f"bands: no column {name}")
    return name
