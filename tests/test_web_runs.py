"""What the Runs page lists: finished simulation folders (never a half-written one) and the MLflow store's runs."""

from __future__ import annotations

import time
from pathlib import Path

from engine import Results
from experiments.output import output_folder, simulation_files
from experiments.runner import replicate
from experiments.tracking import MlflowTracker, track_simulation
from experiments.web.run_store import mlflow_rows, simulation_folders
from scenarios import load_scenario


def simulate_into(folder: Path, tracker=None) -> None:
    scenario = load_scenario("mmc", ["horizon_months=1"])
    runs = replicate(scenario, 2, 1)
    results = Results.from_replications(runs)
    with output_folder(folder, "simulate") as files:
        simulation_files(files, results, runs, scenario, 1)
        paths = files.commit()
    if tracker is not None:
        track_simulation(tracker, "mmc", ["horizon_months=1"], scenario, 1, results, paths, folder)


def test_only_finished_simulation_folders_are_listed(tmp_path):
    simulate_into(tmp_path / "cli" / "base")
    simulate_into(tmp_path / "web" / ".20270101-simulate-1.partial")  # a job still writing
    (tmp_path / "web" / "half").mkdir()
    (tmp_path / "web" / "half" / "summary.json").write_text("{}")  # not a simulation folder
    copy = tmp_path / "mlartifacts" / "0" / "abc" / "artifacts"  # MLflow's copy of a tracked run's files
    copy.mkdir(parents=True)
    for name in ("summary.json", "bands.csv", "replications.csv"):
        (copy / name).write_bytes((tmp_path / "cli" / "base" / name).read_bytes())
    assert simulation_folders(tmp_path) == [tmp_path / "cli" / "base"]
    assert simulation_folders(tmp_path / "absent") == []


def test_the_stores_runs_are_listed_with_the_folder_they_wrote(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    simulate_into(tmp_path / "run", MlflowTracker(uri))
    rows, problem = mlflow_rows(uri)
    assert problem is None
    assert [(row["name"], row["status"], row["folder"]) for row in rows] == [("mmc", "finished", str((tmp_path / "run").resolve()))]


def test_a_simulation_job_keeps_its_finished_run_when_the_store_fails_after_it(tmp_path, monkeypatch):
    """A store that cannot be used fails the job before any work, leaving no folder; one that fails after the files
    are written leaves the run finished and listed, the failure said in the job's message."""
    from experiments.web.jobs import JobManager
    from experiments.web.pages import simulate as page

    scenario = load_scenario("mmc", ["horizon_months=1"])
    manager = JobManager(tmp_path, threads=1)
    refused = manager.submit("simulate", "mmc", page.simulation_work(scenario, 2, 1, "mmc", [], "bogus://store"), total=2)

    def failing(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(page, "track_simulation", failing)
    kept = manager.submit("simulate", "mmc", page.simulation_work(scenario, 2, 1, "mmc", [], f"sqlite:///{tmp_path / 'mlflow.db'}"), total=2)
    for job_id in (refused, kept):
        while manager.get(job_id).status in ("queued", "running"):
            time.sleep(0.05)
    refused, kept = manager.get(refused), manager.get(kept)
    assert refused.status == "failed" and refused.message.startswith("tracking:") and not refused.folder.exists()
    assert kept.status == "done" and "tracking failed (database is locked), the files are kept" in kept.message
    assert simulation_folders(tmp_path) == [kept.folder]
