"""What the Runs page lists: finished simulation folders (never a half-written one) and the MLflow store's runs."""

from __future__ import annotations

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
