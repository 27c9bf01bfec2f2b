"""The web app's scenario state and job threads, without a browser: edits are the command line's overrides, so the
page and ``salesops simulate --set`` agree on every scenario and every message."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from experiments.web import scenario_state as ss
from experiments.web.jobs import KEPT_RESULTS, JobError, JobManager
from scenarios import ScenarioError, load_scenario


def data_url(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def test_a_cell_edit_keeps_a_shorthand_count_spread_over_the_territories():
    state = ss.with_edit(ss.shipped_state("baseline"), "roles.ae.hiring_plan.2027-03", "4")  # 4 spread by lead share
    key, value = ss.hiring_edit(ss.effective_data(state), "ae", "north", "2027-03", 2)
    scenario = ss.resolve(ss.with_edit(state, key, value))
    assert (key, value) == ("roles.ae.hiring_plan.2027-03", "{all: 4, north: 2}")
    # the same requisitions as the command line's override: 4 spread by lead share (north 30%) plus 2 in north
    cli = load_scenario("baseline", ["roles.ae.hiring_plan.2027-03={all: 4, north: 2}"])
    assert scenario.requisitions("ae") == cli.requisitions("ae")
    assert sum(count for _, _, count in scenario.requisitions("ae")) == 6
    rows = {(r["role"], r["territory"]): r["2027-03"] for r in ss.hiring_rows(ss.effective_data(ss.with_edit(state, key, value)))}
    assert rows[("ae", "all")] == 4 and rows[("ae", "north")] == 2 and rows[("ae", "south")] == 0


@pytest.mark.parametrize(("key", "value", "message"), [
    ("roles.sdr.hiring_plan.2027-03", "{south: -2}", "roles.sdr.hiring_plan.2027-03.south: Input should be greater than or equal to 0 (got -2)"),
    ("funnel.sql_rate.smb", "lots", "funnel.sql_rate.smb: Input should be a valid number, unable to parse string as a number (got 'lots')"),
    ("roles.ae.hiring_plan.2031-01", "{north: 1}", "roles.ae.hiring_plan.2031-01: month outside the horizon 2027-01..2028-06"),
])
def test_a_bad_edit_gets_the_command_lines_message(key, value, message):
    state = ss.with_edit(ss.shipped_state("baseline"), key, value)
    with pytest.raises(ScenarioError) as page:
        ss.resolve(state)
    with pytest.raises(ScenarioError) as cli:
        load_scenario("baseline", [f"{key}={value}"])
    assert page.value.problems == cli.value.problems
    assert message in page.value.problems


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("bad.yaml", "name: x\nfunnel: [unclosed\n", "bad.yaml: line 3, column 1: not valid YAML"),
    ("list.yaml", "- 1\n- 2\n", "list.yaml: expected a mapping of scenario keys at the top level"),
    ("empty.yaml", "  \n", "empty.yaml: the file is empty"),
    ("binary.yaml", b"\xff\xfe\x00name", "binary.yaml: not valid UTF-8 at byte 0"),
    ("notes.txt", "name: x\n", "notes.txt: expected a scenario (.yaml, .yml) or a calibration (.json)"),
    ("calibration.json", "{\"data\": {}}", "calibration.json: not a calibration file: no 'scenario' mapping"),
])
def test_a_bad_upload_is_refused_naming_the_file(filename, content, message):
    with pytest.raises(ScenarioError) as error:
        ss.uploaded_state(filename, data_url(content), ss.shipped_state("baseline"))
    assert str(error.value).startswith(message), str(error.value)


def test_an_uploaded_scenario_is_the_same_scenario_the_command_line_reads(tmp_path):
    source = (Path(ss.__file__).parents[2] / "scenarios" / "library" / "hiring_push.yaml").read_text()
    state = ss.uploaded_state("mine.yaml", data_url(source), ss.shipped_state("baseline"))
    assert state["source"] == "mine.yaml"
    assert ss.resolve(state) == load_scenario("hiring_push")
    # the downloaded YAML is runnable as it is
    (tmp_path / "down.yaml").write_text(ss.scenario_yaml(ss.resolve(state)))
    assert load_scenario(tmp_path / "down.yaml") == load_scenario("hiring_push")


def wait(manager: JobManager, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while manager.get(job_id).status in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_job_folder_appears_only_when_the_job_succeeded(tmp_path):
    manager = JobManager(tmp_path, threads=1)

    def good(job, folder):
        (folder / "out.txt").write_text("done")
        job.advance(1)
        return 7

    def refused(job, folder):
        (folder / "half.txt").write_text("half")
        raise JobError("units.csv row 3 column 'workload': 'n/a' is not a number")

    def broken(job, folder):
        raise ZeroDivisionError("division by zero")

    ids = [manager.submit("test", name, work, total=1) for name, work in (("good", good), ("refused", refused), ("broken", broken))]
    for job_id in ids:
        wait(manager, job_id)
    done, failed, crashed = (manager.get(i) for i in ids)
    assert done.status == "done" and done.result == 7 and (done.folder / "out.txt").read_text() == "done"
    assert failed.status == "failed" and failed.message == "units.csv row 3 column 'workload': 'n/a' is not a number"
    assert crashed.status == "failed" and crashed.message == "ZeroDivisionError: division by zero"
    # only the finished job's folder exists; nothing half-written is left behind
    assert sorted(p.name for p in (tmp_path / "web").iterdir()) == [done.folder.name]


def test_a_job_whose_folder_cannot_be_written_fails_and_the_next_job_still_runs(tmp_path):
    """Creating the hidden folder and renaming it into place can fail too (a file where the runs folder should be,
    a folder already taken): the job fails with the reason and the job thread goes on to the next job."""
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    manager = JobManager(blocked, threads=1)
    first = manager.submit("test", "unwritable", lambda job, folder: 1)
    wait(manager, first)
    assert manager.get(first).status == "failed" and "Error" in manager.get(first).message

    manager = JobManager(tmp_path / "runs", threads=1)
    manager.runs.joinpath("web").mkdir(parents=True)

    def taken(job, folder):
        job.folder.mkdir()
        (job.folder / "other.txt").write_text("someone else's")  # the final name is taken meanwhile
        return 1

    ids = [manager.submit("test", "taken", taken), manager.submit("test", "after", lambda job, folder: 2)]
    for job_id in ids:
        wait(manager, job_id)
    refused, after = (manager.get(i) for i in ids)
    assert refused.status == "failed" and (refused.folder / "other.txt").read_text() == "someone else's"
    assert after.status == "done" and after.result == 2
    assert not list(manager.runs.joinpath("web").glob(".*.partial"))


def test_only_the_newest_results_stay_in_memory(tmp_path):
    manager = JobManager(tmp_path, threads=1)
    ids = [manager.submit("test", str(n), lambda job, folder, n=n: n, keep=False) for n in range(KEPT_RESULTS + 3)]
    for job_id in ids:
        wait(manager, job_id)
    jobs = [manager.get(i) for i in ids]
    assert [job.dropped for job in jobs] == [True] * 3 + [False] * KEPT_RESULTS
    assert [job.result for job in jobs[3:]] == list(range(3, KEPT_RESULTS + 3))


def test_an_uploaded_calibration_is_laid_over_the_tabs_scenario():
    fragment = '{"scenario": {"funnel": {"sql_rate": {"default": 0.5, "smb": 0.2}}}}'
    state = ss.uploaded_state("calibration.json", data_url(fragment), ss.shipped_state("baseline"))
    scenario = ss.resolve(state)
    assert state["source"] == "baseline (shipped) + calibration.json"
    # the calibrated funnel key replaces the scenario's whole (no rate of the scenario's is kept beside it) ...
    assert scenario.funnel.sql_rate == {"default": 0.5, "smb": 0.2}
    # ... and what the calibration does not give stays as the scenario has it
    assert scenario.funnel.mql_rate == load_scenario("baseline").funnel.mql_rate
    assert scenario.roles == load_scenario("baseline").roles
