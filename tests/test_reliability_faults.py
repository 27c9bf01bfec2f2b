"""Faults: signals at random moments, a full disk, read-only and locked folders, broken tracking stores.

After any signal to a command running with ``--workers 2``: no worker outlives it, its folder holds either the
previous complete result or the new complete one (``complete.json`` vouches for every file), and running the
command again gives exactly the files of an uninterrupted run.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from experiments import output
from experiments.output import LOCK, MARKER, OutputError, RunFiles, check_complete
from tests.reliability import FUZZ, assert_clean_ending, invoke, strict_json
from tests.test_experiments_tracking import store, template_store  # noqa: F401 - fixtures

SIMULATE = ["simulate", "baseline", "-n", "8", "--set", "horizon_months=12", "--workers", "2"]
SWEEP = """name: faults
scenario: baseline
set: [horizon_months=6]
factors:
  roles.ae.salary_monthly: [9000, 11000, 13000, 15000]
replications: 4
seed: 3
"""
#: Random moments per signal: a few by default, more under SALESOPS_FUZZ=1.
MOMENTS = 6 if FUZZ else 1
rng = random.Random(17)


def start(*args: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_workers(process: subprocess.Popen, count: int = 2, seconds: float = 60) -> list[psutil.Process]:
    """The command's pool workers, once ``count`` are running (or the command ended)."""
    parent, deadline = psutil.Process(process.pid), time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            children = parent.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        if len(children) >= count:
            return children
        time.sleep(0.05)
    return []


def assert_no_orphans(workers: list[psutil.Process]) -> None:
    """Every worker of the ended command is gone within a few seconds (none re-parented and left running)."""
    deadline = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = [w for w in alive if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    assert not alive, f"orphan workers: {[w.pid for w in alive]}"


def interrupt(args: list[str | Path], signum: int, delay: float) -> tuple[subprocess.Popen, bytes]:
    """Start the command, send it ``signum`` ``delay`` seconds after its workers run, and check that it ends with no
    orphan worker and no traceback; the ended process and its standard error."""
    process = start(*args)
    workers = wait_for_workers(process)
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert_no_orphans(workers)
    assert b"Traceback" not in stderr
    return process, stderr


def same_files(a: Path, b: Path, names: tuple[str, ...]) -> bool:
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in names)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulation, uninterrupted, in one process."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = invoke(*SIMULATE[:-2], "--out", out)
    assert result.exit_code == 0, result.output
    return out


TABLES = ("monthly.csv", "bands.csv", "states.csv", "replications.csv", "summary.json")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_signal_at_a_random_moment_leaves_no_orphan_and_no_false_result(tmp_path, reference, signum):
    out = tmp_path / "out"
    assert invoke("simulate", "mmc", "-n", "2", "--set", "horizon_months=2", "--out", out).exit_code == 0  # an earlier run
    earlier = (out / "summary.json").read_bytes()
    for _ in range(MOMENTS):
        process, stderr = interrupt([*SIMULATE, "--out", out], signum, rng.uniform(0.0, 2.5))
        check_complete(out)  # the earlier run or the new one, complete either way
        published_new = (out / "summary.json").read_bytes() != earlier
        if process.returncode == 0 or published_new:  # finished, or stopped after publishing (while printing)
            assert same_files(out, reference, TABLES), "a published result differs from an uninterrupted run"
        elif signum != signal.SIGKILL:
            assert process.returncode == 130 and stderr.decode().startswith("error: "), stderr
        if signum != signal.SIGKILL:  # killed outright, it leaves its staged files to the next writer
            assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != LOCK], "temporary files left behind"
    resumed = start(*SIMULATE, "--out", out)
    assert resumed.wait(timeout=300) == 0
    assert same_files(out, reference, TABLES), "the run after an interrupt differs from an uninterrupted one"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [LOCK], "staged files of a killed run remain"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_sweep_leaves_no_orphan_and_resumes_exactly(tmp_path, signum):
    definition = tmp_path / "sweep.yaml"
    definition.write_text(SWEEP)
    straight = invoke("sweep", definition, "--out", tmp_path / "straight")
    assert straight.exit_code == 0, straight.output
    out = tmp_path / "out"
    interrupt(["sweep", definition, "--out", out, "--workers", "2"], signum, rng.uniform(0.5, 3.0))
    if (out / MARKER).exists():  # finished, or stopped after publishing: the tables are the whole sweep's
        check_complete(out)
        assert same_files(out, tmp_path / "straight", ("results.csv", "summary.csv", "sweep.yaml"))
    resumed = invoke("sweep", definition, "--out", out, "--workers", "2")
    assert resumed.exit_code == 0, resumed.output
    check_complete(out)
    assert same_files(out, tmp_path / "straight", ("results.csv", "summary.csv", "sweep.yaml"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_plan_leaves_no_worker_and_no_plan(tmp_path, signum):
    """A headcount plan keeps one pool of workers through its solves and checks: stopped at a random moment, early
    or later in the plan, the pool goes with it and its folder holds no plan and no staged file."""
    for moment, delay in enumerate((rng.uniform(0.0, 1.0), rng.uniform(1.5, 3.0))):
        out = tmp_path / f"plan{moment}"
        process, stderr = interrupt(["optimize", "headcount", "baseline", "--target-bookings", "34000000", "--replications", "4",
                                     "--workers", "2", "--out", out], signum, delay)
        if process.returncode in (0, 1):  # finished first: a plan, or the best plan short of the target
            check_complete(out)
            continue
        assert process.returncode == 130 and stderr.decode().startswith("error: "), stderr
        assert not out.exists() or [p.name for p in out.iterdir()] in ([], [LOCK]), list(out.iterdir())


def test_a_full_disk_is_one_line_and_keeps_the_previous_result(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert invoke("simulate", "baseline", "-n", "2", "--set", "horizon_months=2", "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    written = []

    def full(descriptor: int) -> None:
        written.append(descriptor)
        if len(written) > 2:  # the disk fills up while the third file is written
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.os, "fsync", full)
    result = invoke("simulate", "baseline", "-n", "2", "--seed", "9", "--set", "horizon_months=2", "--out", out)
    monkeypatch.undo()
    assert assert_clean_ending(result) == "error" and result.exit_code == 1
    assert "no space left on the device" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before, "the previous result was touched"
    check_complete(out)


def test_a_bad_out_is_refused_before_the_work(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    for out, expected in ((tmp_path / "file", "exists and is not a folder"), (tmp_path / "file" / "sub", "cannot create the output folder")):
        result = invoke("simulate", "baseline", "-n", "1", "--out", out)
        assert assert_clean_ending(result) == "error" and expected in result.stderr and result.exit_code == 2
    real_open = open

    def read_only(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if str(path).endswith(LOCK):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(output, "open", read_only, raising=False)
    started = time.perf_counter()
    result = invoke("simulate", "baseline", "-n", "200", "--out", tmp_path / "ro")
    assert assert_clean_ending(result) == "error" and "cannot write in this folder (Permission denied)" in result.stderr
    assert time.perf_counter() - started < 10, "the folder is checked before simulating"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the injected PermissionError case covers it")
def test_a_read_only_folder_is_refused_before_the_work(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    result = invoke("simulate", "baseline", "-n", "1", "--out", folder)
    assert assert_clean_ending(result) == "error" and "cannot write in this folder" in result.stderr


def test_a_locked_folder_refuses_a_second_writer(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("pid 4242")
        handle.flush()
        for args in (["simulate", "baseline", "-n", "1"], ["sweep", "hiring_timing"], ["generate-crm", "baseline"]):
            result = invoke(*args, "--out", out)
            assert assert_clean_ending(result) == "error" and "another salesops command (pid 4242) is writing this folder" in result.stderr
    assert not (out / MARKER).exists()


def test_two_sweeps_into_one_folder_at_once_the_second_is_refused(tmp_path):
    definition = tmp_path / "sweep.yaml"
    definition.write_text(SWEEP)
    out = tmp_path / "out"
    first = start("sweep", definition, "--out", out, "--workers", "2")
    try:
        wait_for_workers(first)
        other = tmp_path / "other.yaml"
        other.write_text(SWEEP.replace("seed: 3", "seed: 4"))
        second = invoke("sweep", other, "--out", out)
        assert assert_clean_ending(second) == "error" and "is writing this folder" in second.stderr
    finally:
        assert first.wait(timeout=300) == 0
    marker = check_complete(out)
    assert strict_json(out / MARKER) == marker and "seed: 3" in (out / "sweep.yaml").read_text()


def test_a_new_set_removes_the_stale_files_of_the_previous_one(tmp_path):
    first = RunFiles(tmp_path, "optimize headcount")
    first.write("plan.csv", "a\n1\n"), first.write("scenario.yaml", "name: plan\n"), first.commit()
    failed = RunFiles(tmp_path, "optimize headcount")
    failed.write("report.json", '{"status": "infeasible"}\n'), failed.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["complete.json", "report.json"]
    check_complete(tmp_path)
    (tmp_path / ".summary.json.99999.tmp").write_text("{")  # staged by a writer killed outright
    with output.output_folder(tmp_path, "simulate"):
        assert not (tmp_path / ".summary.json.99999.tmp").exists()
    (tmp_path / "report.json").write_text("{}")  # changed after the fact
    with pytest.raises(OutputError, match="differs from the run recorded"):
        check_complete(tmp_path)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_broken_tracking_stores_fail_fast_before_the_work(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not an SQLite database" * 100)
    short = tmp_path / "notes.txt"
    short.write_text("x")
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    cases = {
        f"sqlite:///{corrupt}": "is not a usable SQLite database",
        f"sqlite:///{short}": "is not a usable SQLite database",
        f"sqlite:///{truncated}": "is not a usable SQLite database",
        f"http://127.0.0.1:{closed_port()}": "no tracking server answers",
        "ftp://example.invalid/store": "unknown scheme 'ftp'",
        f"sqlite:///{tmp_path}/missing/mlflow.db": "no such folder",
    }
    for uri, expected in cases.items():
        started = time.perf_counter()
        result = invoke("simulate", "baseline", "-n", "200", "--tracking-uri", uri, "--out", tmp_path / "out")
        assert assert_clean_ending(result) == "error" and expected in result.stderr, result.stderr
        assert time.perf_counter() - started < 15, f"{uri}: not fast"
        assert not (tmp_path / "out").exists(), "the store is checked before the work"
    assert short.read_text() == "x", "a file that is not a store is left as it was"


def test_report_track_of_a_folder_with_a_quote_in_its_path(tmp_path, store):  # noqa: F811 - the fixture
    out = tmp_path / "it's here"
    assert invoke("simulate", "baseline", "-n", "2", "--set", "horizon_months=2", "--out", out, "--tracking-uri", store).exit_code == 0
    result = invoke("report", out, "--tracking-uri", store)
    assert assert_clean_ending(result, out) == "ok", result.output
    assert "logged the report and plots to MLflow run" in result.output


def test_two_tracked_sweeps_of_one_design_at_once_the_second_is_refused(tmp_path, store):  # noqa: F811 - the fixture
    definition = tmp_path / "sweep.yaml"
    definition.write_text(SWEEP)
    first = start("sweep", definition, "--out", tmp_path / "a", "--workers", "2", "--tracking-uri", store)
    try:
        wait_for_workers(first)
        second = invoke("sweep", definition, "--out", tmp_path / "b", "--tracking-uri", store)
        assert assert_clean_ending(second) == "error" and "another salesops process is logging this sweep" in second.stderr
    finally:
        assert first.wait(timeout=300) == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    cells = [run.data.tags.get("salesops.cell_key") for run in client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`salesops.cell_key` != ''")]
    assert len(cells) == len(set(cells)) == 4, "every cell logged exactly once"
