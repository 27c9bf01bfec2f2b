"""MLflow tracking: a sweep killed half-way and resumed holds one parent and one child run per cell; simulate --track."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli import app
from experiments.tracking import CELL_TAG, OUT_TAG, SWEEP_TAG

mlflow = pytest.importorskip("mlflow")

SWEEP = """
name: resumable
scenario: baseline
set: [horizon_months=4]
factors:
  roles.sdr.headcount.north: [4, 5, 6, 7]
  territories.north.lead_share: [0.3, 0.4]
replications: 3
seed: 9
"""
CELLS = 8


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite store per session (creating one costs seconds); tests copy it."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(template_store: Path, tmp_path: Path) -> str:
    """A fresh tracking URI in the test's folder, copied from the template."""
    shutil.copy(template_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs(uri: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("salesops")
    return client.search_runs([experiment.experiment_id], max_results=1000)


def test_killed_sweep_resumes_with_every_cell_once_and_no_duplicate_runs(tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sweep.yaml").write_text(SWEEP, encoding="utf-8")
    command = [sys.executable, "-m", "experiments", "sweep", "sweep.yaml", "--out", "out", "--tracking-uri", store]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cells = tmp_path / "out" / "cells"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(cells.glob("*.json"))) < 3:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    done_before = len(list(cells.glob("*.json")))
    assert 3 <= done_before < CELLS and not (tmp_path / "out" / "results.csv").exists()

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sweep", "sweep.yaml", "--out", "out", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    assert f"{done_before} already done, {CELLS - done_before} run, 0 failed" in result.output.replace("\n", " ")
    assert len(list(cells.glob("*.json"))) == CELLS and not list(cells.glob(".*"))
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert results.groupby("cell").size().to_dict() == {cell: 3 for cell in range(CELLS)}

    logged = runs(store)
    parents = [r for r in logged if SWEEP_TAG in r.data.tags]
    children = [r for r in logged if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == CELLS and {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert sorted(r.data.tags[CELL_TAG] for r in children) == sorted(results["cell_key"].unique())
    assert all(r.info.status == "FINISHED" and "bookings_mean" in r.data.metrics for r in children)

    again = CliRunner().invoke(app, ["sweep", "sweep.yaml", "--out", "out", "--tracking-uri", store])
    assert f"{CELLS} already done, 0 run" in again.output.replace("\n", " ")
    assert len(runs(store)) == CELLS + 1


def test_simulate_track_logs_kpis_series_and_files_and_compare_reads_run_ids(tmp_path: Path, store: str) -> None:
    run_ids = []
    for name, extra in (("a", []), ("b", ["--set", "roles.sdr.headcount.north=2"])):
        args = ["simulate", "baseline", "-n", "4", "--set", "horizon_months=3", "--out", str(tmp_path / name), "--tracking-uri", store]
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 0, result.output
        [run] = [r for r in runs(store) if r.data.tags.get(OUT_TAG) == str((tmp_path / name).resolve())]
        run_ids.append(run.info.run_id)
    client = mlflow.MlflowClient(tracking_uri=store)
    run = client.get_run(run_ids[1])
    assert run.data.params["overrides"] == "horizon_months=3; roles.sdr.headcount.north=2"
    assert len(run.data.params["scenario_hash"]) == 16 and "response_hours_mean_p90" in run.data.metrics
    assert [m.step for m in client.get_metric_history(run_ids[1], "monthly/bookings")] == [0, 1, 2]
    artifacts = {a.path for a in client.list_artifacts(run_ids[1])}
    assert {"scenario.yaml", "summary.json", "replications.csv", "bands.csv"} <= artifacts
    assert CliRunner().invoke(app, ["report", str(tmp_path / "b"), "--tracking-uri", store]).exit_code == 0
    assert {"report/report.html", "report/bookings.png"} <= {a.path for a in client.list_artifacts(run_ids[1], "report")}
    experiment = client.get_experiment_by_name("salesops")
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()

    args = ["compare", *run_ids, "--kpi", "response_hours_mean", "--tracking-uri", store, "--out", str(tmp_path / "d.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    [row] = pd.read_csv(tmp_path / "d.csv").itertuples()
    assert row.excludes_zero and row.ci_low > 0 and row.n == 4  # 2 SDRs in north instead of 6: longer waits
    assert row.run_a == f"baseline ({run_ids[0][:8]})"


def test_winloss_track_logs_headline_figures_and_files(tmp_path: Path, store: str) -> None:
    from tests.planted_export import MAPPING, planted_export

    planted_export(3, weak_rep=True).to_csv(tmp_path / "planted.csv", index=False)
    (tmp_path / "planted.yaml").write_text(MAPPING, encoding="utf-8")
    out = tmp_path / "winloss"
    args = ["winloss", str(tmp_path / "planted.csv"), "-m", str(tmp_path / "planted.yaml"), "--out", str(out), "--tracking-uri", store]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    [run] = [r for r in runs(store) if r.data.tags.get(OUT_TAG) == str(out.resolve())]
    assert run.data.tags["salesops.kind"] == "winloss" and run.data.metrics["leakage_attributes"] == 1
    assert 0.5 < run.data.metrics["holdout_auc"] < 1 and run.data.metrics["flagged_units"] >= 1
    artifacts = {a.path for a in mlflow.MlflowClient(tracking_uri=store).list_artifacts(run.info.run_id)}
    assert {"drivers.csv", "performance.csv", "winloss.json", "report.html", "drivers.png"} <= artifacts
