"""Sweeps: definitions and their errors, identical results on every executor, resume; paired comparisons."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures.process import _ExecutorManagerThread
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cells import CellStore, cell_key
from experiments.cli import app
from experiments.compare import RunData, load_run, paired_differences
from experiments.runner import executor
from experiments.sweep import run_sweep
from experiments.sweep_spec import SweepError, load_sweep
from experiments.tracking import NullTracker, RunRecord

SMALL = """
name: small
scenario: baseline
set: [horizon_months=3]
factors:
  hire_month: ["2027-01", "2027-02"]
  ae_hires: {key: "roles.ae.hiring_plan.{hire_month}", values: [2, 4]}
replications: 2
seed: 5
"""


def write(folder: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_design_grid_placeholders_and_shared_seed(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, SMALL))
    assert [cell.levels for cell in sweep.cells] == [
        {"hire_month": "2027-01", "ae_hires": 2}, {"hire_month": "2027-01", "ae_hires": 4},
        {"hire_month": "2027-02", "ae_hires": 2}, {"hire_month": "2027-02", "ae_hires": 4},
    ]
    assert sweep.cells[3].overrides[-1] == "roles.ae.hiring_plan.2027-02=4"
    assert dict(sweep.cells[3].scenario.roles["ae"].hiring_plan["2027-02"]) != {}
    assert {cell.scenario.seed for cell in sweep.cells} == {5}


def test_ranges_and_seeded_latin_hypercube(tmp_path: Path) -> None:
    text = """
name: sampled
scenario: baseline
factors:
  territories.north.lead_share: {range: {start: 0.2, stop: 0.4, step: 0.1}}
  roles.sdr.prospecting_share: {uniform: [0.05, 0.2]}
  roles.sdr.headcount.west: {integers: [3, 6]}
sample: {method: latin_hypercube, n: 4}
seed: 3
"""
    first, again = load_sweep(write(tmp_path, text)), load_sweep(write(tmp_path, text))
    assert len(first.cells) == 3 * 4
    assert [c.levels for c in first.cells] == [c.levels for c in again.cells]
    assert sorted({c.levels["territories.north.lead_share"] for c in first.cells}) == [0.2, 0.3, 0.4]
    shares = sorted(c.levels["roles.sdr.prospecting_share"] for c in first.cells[:4])
    assert all(0.05 + 0.0375 * i <= s < 0.05 + 0.0375 * (i + 1) for i, s in enumerate(shares))  # one per stratum
    assert all(3 <= c.levels["roles.sdr.headcount.west"] <= 6 for c in first.cells)


@pytest.mark.parametrize(
    "factors, expected",
    [
        ("  roles.sdr.hedcount.north: [4, 6]", "roles.sdr.hedcount: unknown key"),
        ("  roles.sdr.headcount.north: []", "factors.roles.sdr.headcount.north: values: empty factor list"),
        ("  territories.north.lead_share: {range: {start: 0.2, stop: 0.4, step: 0}}", "range.step: must not be 0"),
        ("  territories.north.lead_share: {range: {start: 0.4, stop: 0.2, step: 0.1}}", "empty range"),
        ("  roles.sdr.headcount.north: {range: {start: 1, stop: 40, step: 1}}\n  roles.ae.headcount.north: {range: {start: 1, stop: 40, step: 1}}",
         "the design has 1,600 cells, more than the maximum of 500"),
        ("  roles.sdr.headcount.north: [4, -1]", "roles.sdr.headcount.north: Input should be greater than or equal to 0"),
        ("  x: {key: 'roles.ae.hiring_plan.{month}', values: [1]}", "factors.x.key: {month} names no factor"),
        ("  roles.sdr.prospecting_share: {uniform: [0.1, 0.2]}", "sample: required"),
    ],
)
def test_bad_sweep_files_are_refused_before_anything_runs(tmp_path: Path, factors: str, expected: str) -> None:
    path = write(tmp_path, f"name: bad\nscenario: baseline\nfactors:\n{factors}\n")
    with pytest.raises(SweepError) as caught:
        load_sweep(path)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"error: {path}: " in result.output and expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_max_cells_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL + "max_cells: 3\n")
    with pytest.raises(SweepError, match="4 cells, more than the maximum of 3"):
        load_sweep(path)
    assert len(load_sweep(path, max_cells=4).cells) == 4


def test_results_identical_on_one_and_two_workers_and_dask(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, SMALL))
    tables = {}
    for name, options in {"serial": (1, None), "pool": (2, None), "dask": (2, "local")}.items():
        if options[1] is not None:
            pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
        with executor(*options) as pool:
            outcome = run_sweep(sweep, tmp_path / name, pool)
        assert (outcome.ran, outcome.reused, outcome.failed) == (4, 0, 0)
        tables[name] = outcome.results.read_bytes()
    assert tables["serial"] == tables["pool"] == tables["dask"]
    results = pd.read_csv(tmp_path / "serial" / "results.csv")
    assert len(results) == 4 * 2 and list(results.columns[:4]) == ["cell", "cell_key", "hire_month", "ae_hires"]
    # common random numbers: the cells share their leads, replication by replication
    assert results.groupby("replication")["leads"].nunique().eq(1).all()
    summary = pd.read_csv(tmp_path / "serial" / "summary.csv")
    assert list(summary["status"]) == ["ok"] * 4 and "bookings_p90" in summary


@pytest.mark.parametrize("after", [0.3, 0.6, 1.0])
def test_an_interrupted_pool_leaves_no_worker_and_no_thread_of_its_own(after: float, monkeypatch) -> None:
    """An interrupt while tasks run: when the executor's context has ended, its workers are gone and so is the pool's
    manager thread, which ended without an error. One left running races the interpreter's exit, and one that
    fails prints its traceback: either after the command's own error line."""
    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    ctrl_c = threading.Timer(after, os.kill, (os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt), executor(2) as pool:
        ctrl_c.start()
        for _ in pool.run(time.sleep, {task: (30.0,) for task in range(6)}):
            raise AssertionError("a task of 30 s ended before the interrupt")
    assert not multiprocessing.active_children()
    assert not [thread for thread in threading.enumerate() if isinstance(thread, _ExecutorManagerThread)]
    assert not failures, [failure.exc_value for failure in failures]


def test_rerun_skips_finished_cells_and_redoes_failed_ones(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, SMALL))
    with executor() as pool:
        run_sweep(sweep, tmp_path / "out", pool)
        store = CellStore(tmp_path / "out" / "cells")
        broken = cell_key(sweep.cells[1].scenario, 2, 5)
        record = store.read(broken)
        record.error, record.runs = "replication 0: RuntimeError: boom", []
        store.write(record)
        before = (tmp_path / "out" / "results.csv").read_text()
        outcome = run_sweep(sweep, tmp_path / "out", pool)
    assert (outcome.ran, outcome.reused, outcome.failed) == (1, 3, 0)
    assert (tmp_path / "out" / "results.csv").read_text() == before
    assert sorted(p.name for p in (tmp_path / "out" / "cells").iterdir()) == sorted(
        f"{cell_key(c.scenario, 2, 5)}.json" for c in sweep.cells
    )


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import experiments.sweep as sweep_module

    real = sweep_module.run_replication

    def flaky(scenario, replication, seed):  # noqa: ANN001, ANN202 - stands in for the engine
        if scenario.roles["ae"].hiring_plan.get("2027-02") and replication == 1:
            raise RuntimeError("engine failure")
        return real(scenario, replication, seed)

    monkeypatch.setattr(sweep_module, "run_replication", flaky)
    with executor() as pool:
        outcome = run_sweep(load_sweep(write(tmp_path, SMALL)), tmp_path / "out", pool)
    assert (outcome.ran, outcome.failed) == (4, 2)
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["status"]) == ["ok", "ok", "failed", "failed"]
    assert summary["error"][2] == "replication 1: RuntimeError: engine failure"
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == 2 * 2


class BrokenStore(NullTracker):
    """A tracking store that stops answering after the first cell."""

    active = True

    def __init__(self) -> None:
        self.logged: list[str] = []

    def log_run(self, record: RunRecord, failed: bool = False) -> str | None:
        if self.logged:
            raise ConnectionError("tracking store unreachable")
        self.logged.append(record.name)
        return "run-1"


def test_a_tracking_error_stops_the_sweep_and_keeps_the_cells_stored(tmp_path: Path) -> None:
    sweep, tracker = load_sweep(write(tmp_path, SMALL)), BrokenStore()
    with executor() as pool, pytest.raises(ConnectionError, match="unreachable"):
        run_sweep(sweep, tmp_path / "out", pool, tracker)
    stored = list((tmp_path / "out" / "cells").glob("*.json"))
    assert len(tracker.logged) == 1 and 2 <= len(stored) <= len(sweep.cells)
    with executor() as pool:  # resumed without the store: only the cells not stored run
        outcome = run_sweep(sweep, tmp_path / "out", pool)
    assert (outcome.ran, outcome.reused, outcome.failed) == (len(sweep.cells) - len(stored), len(stored), 0)


def simulate(folder: Path, *overrides: str) -> Path:
    args = ["simulate", "baseline", "-n", "6", "--seed", "4", "--out", str(folder), "--set", "horizon_months=3"]
    result = CliRunner().invoke(app, args + [item for o in overrides for item in ("--set", o)])
    assert result.exit_code == 0, result.output
    return folder


def test_compare_finds_real_differences_and_none_between_identical_runs(tmp_path: Path) -> None:
    base = simulate(tmp_path / "base")
    same = simulate(tmp_path / "same")
    busier = simulate(tmp_path / "busier", "lead_sources.inbound_smb.monthly_volume=1300")
    a, b, c = (load_run(str(p), "sqlite:///unused.db") for p in (base, same, busier))
    identical = paired_differences(a, b).set_index("kpi")
    assert (identical["difference"] == 0).all() and (identical["ci_low"] <= 0).all() and (identical["ci_high"] >= 0).all()
    assert not identical["excludes_zero"].any()
    real = paired_differences(a, c).set_index("kpi")
    assert real.loc["leads", "excludes_zero"] and real.loc["leads", "ci_low"] > 0
    assert real.loc["response_hours_mean", "ci_low"] > 0  # more leads, same SDRs: longer waits
    result = CliRunner().invoke(app, ["compare", str(base), str(busier), "--kpi", "leads", "--out", str(tmp_path / "d.csv")])
    assert result.exit_code == 0, result.output
    assert "leads" in result.output and pd.read_csv(tmp_path / "d.csv")["excludes_zero"].all()


def test_compare_pairs_by_replication() -> None:
    a = RunData("a", 1, pd.DataFrame({"bookings": [10.0, 20.0, 30.0]}))
    b = RunData("b", 1, pd.DataFrame({"bookings": [11.0, 21.0, 31.0]}))  # +1 each: noise cancels in pairs
    row = paired_differences(a, b, ("bookings",)).iloc[0]
    assert row["difference"] == pytest.approx(1.0) and row["ci_low"] == pytest.approx(1.0) and row["excludes_zero"]


def test_compare_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "nowhere"), str(tmp_path)])
    assert result.exit_code == 2
    assert "not a simulate output folder, a sweep cell file or an MLflow run id" in result.output


def test_shipped_sweeps_are_valid() -> None:
    folder = Path(__file__).parent.parent / "experiments" / "sweeps"
    names = sorted(p.name for p in folder.glob("*.yaml"))
    assert names == ["hiring_timing.yaml", "territory_sdr.yaml"]
    for name in names:
        sweep = load_sweep(folder / name)
        assert len(sweep.cells) == 9 and json.dumps([c.levels for c in sweep.cells])
