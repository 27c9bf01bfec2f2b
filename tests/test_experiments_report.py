"""The HTML report: self-contained, and it renders in headless Chromium (a screenshot that is not blank)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

from experiments.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report") / "run"
    args = ["simulate", "baseline", "-n", "4", "--set", "horizon_months=4", "--out", str(folder)]
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0, result.output
    return folder / "report.html"


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', text)
    assert images == [
        "Monthly bookings", "Cumulative bookings", "Headcount and ramped headcount", "Lead response time", "Utilisation",
        "Funnel over the horizon",
    ]
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing fetched from elsewhere
    assert "Bookings" in text and "P10" in text
    assert sorted(p.name for p in (report.parent / "plots").iterdir()) == sorted(
        f"{n}.png" for n in ("bookings", "cumulative_bookings", "headcount", "response_time", "utilization", "funnel")
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); .ci/run installs it")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
            "--window-size=1400,1800", f"--screenshot={shot}", report.as_uri(),
        ],
        check=True, capture_output=True, timeout=60,
    )
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (1800, 1400)
    assert pixels[:120].mean() < 0.3  # the dark header was drawn
    plots = pixels[300:1500]
    assert plots.std() > 0.1 and len({tuple(p) for p in plots[::37, ::41, :3].reshape(-1, 3)}) > 20  # charts, not blank


def test_a_run_written_again_while_its_report_is_made_gets_no_report(tmp_path, monkeypatch) -> None:
    """The report is built from the files read first and added to the set under the folder's lock: if a simulate
    replaced the set in between, the old run's pages must not join the new run's set."""
    from experiments.report import ReportError, RunFolder, write_report

    out = tmp_path / "run"
    simulate = ["simulate", "mmc", "-n", "2", "--set", "horizon_months=1", "--out", str(out)]
    assert CliRunner().invoke(app, [*simulate, "--seed", "1"]).exit_code == 0
    old = RunFolder.read(out)
    assert CliRunner().invoke(app, [*simulate, "--seed", "2"]).exit_code == 0
    monkeypatch.setattr(RunFolder, "read", classmethod(lambda cls, folder: old))
    with pytest.raises(ReportError, match="written again"):
        write_report(out)
    assert not (out / "report.html").exists()
