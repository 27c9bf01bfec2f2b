"""The salesops command line: outputs, reproducibility and error reporting."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli import app

runner = CliRunner()
SHORT = ["--set", "horizon_months=3"]


def simulate(*args: str):
    return runner.invoke(app, ["simulate", *args])


def test_simulate_writes_monthly_and_summary(tmp_path):
    result = simulate("baseline", "--replications", "2", "--seed", "4", "--out", str(tmp_path), *SHORT)
    assert result.exit_code == 0, result.output
    monthly = pd.read_csv(tmp_path / "monthly.csv")
    required = [
        "replication", "month", "leads", "mql", "sql", "opportunities", "won", "lost", "bookings", "win_rate",
        "cycle_days_mean", "response_hours_mean", "response_hours_p90", "cost",
    ]
    for role in ("sdr", "ae", "manager"):
        required += [f"headcount_{role}", f"ramped_{role}", f"utilization_{role}"]
    assert set(required) <= set(monthly.columns)
    assert len(monthly) == 2 * 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["replications"] == 2 and summary["seed"] == 4
    assert set(summary["kpis"]["bookings"]) == {"mean", "p10", "p50", "p90"}
    assert "Bookings" in result.output


def test_same_seed_identical_files_different_seed_different(tmp_path):
    runs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name, seed in (("a", "9"), ("b", "9"), ("c", "10")):
        assert simulate("baseline", "-n", "2", "--seed", seed, "--out", str(runs[name]), *SHORT).exit_code == 0
    read = {name: (path / "monthly.csv").read_bytes() for name, path in runs.items()}
    assert read["a"] == read["b"]
    assert read["a"] != read["c"]


def test_written_scenario_runs_again_to_the_same_result(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert simulate("mmc", "-n", "1", "--out", str(first), *SHORT).exit_code == 0
    assert simulate(str(first / "scenario.yaml"), "-n", "1", "--out", str(second)).exit_code == 0
    assert (first / "monthly.csv").read_bytes() == (second / "monthly.csv").read_bytes()


@pytest.mark.parametrize(
    "override, key_path",
    [
        ("roles.ae.colour=blue", "roles.ae.colour"),
        ("roles.ae.open_opportunity_limit=many", "roles.ae.open_opportunity_limit"),
        ("lead_sources.inbound_smb.monthly_volume=-1", "lead_sources.inbound_smb.monthly_volume"),
        ("funnel.sql_rate.smb=1.2", "funnel.sql_rate.smb"),
        ("roles.cfo.hiring_plan.2027-02=1", "roles.cfo"),
        ("roles.sdr.hiring_plan.2026-12=1", "roles.sdr.hiring_plan.2026-12"),
    ],
)
def test_bad_input_is_one_line_naming_the_key_and_exits_non_zero(override, key_path, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "experiments", "simulate", "baseline", "--out", str(tmp_path), "--set", override],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and key_path in lines[0], completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    assert not (tmp_path / "monthly.csv").exists()


def test_scenarios_command_lists_shipped():
    result = runner.invoke(app, ["scenarios"])
    assert result.exit_code == 0 and "baseline" in result.output


def _commands(group, path=()):  # noqa: ANN001, ANN202
    """Every command of the CLI, as the words that name it."""
    for name, command in getattr(group, "commands", {}).items():
        yield (*path, name)
        yield from _commands(command, (*path, name))


def test_every_help_prints_as_written():
    """Help is rendered with rich markup, which turns ``:name:`` codes into emoji (``START:END:STEP`` once printed
    ``START🔚STEP``): no command's help may hold one."""
    import typer.main

    for words in _commands(typer.main.get_command(app)):
        result = runner.invoke(app, [*words, "--help"], terminal_width=200)
        assert result.exit_code == 0, (words, result.output)
        assert not [c for c in result.output if ord(c) >= 0x1F000 or 0x2600 <= ord(c) <= 0x27BF], (words, result.output)
