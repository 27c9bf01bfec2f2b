"""The web app in a real browser (Debian's chromium driven by Playwright), walked as a person would: edit the hiring
plan, run, read the cards and charts; plan headcount; design territories and see the map; bad uploads and bad cells
answered in the page while the app keeps serving; two people at once kept apart; a run that outlives its tab.

Screenshots of every page go to ``runs/screenshots/`` (git-ignored), for people to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("no chromium installed (.ci/run installs Debian's chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install salesops[test])")

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "runs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMEOUT = 60_000  # ms: the machine may be busy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app as a user starts it (``salesops serve``), on a free port, writing into a fresh runs folder."""
    runs = tmp_path_factory.mktemp("web-runs")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments", "serve", "--port", str(port), "--runs", str(runs)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start: {process.communicate()[0]}")
            time.sleep(0.3)
    yield url, runs, process
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=20)[0]
    assert process.returncode == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(server[0])
    yield page
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def go(page, title: str) -> None:
    """Follow a link in the header, as a person would (the tab keeps its scenario)."""
    page.get_by_role("link", name=title, exact=True).click()
    page.wait_for_selector("h2:text-is('%s')" % title)


def edit_cell(page, grid: str, row: int, column: str, value: str) -> None:
    cell = page.locator(f"#{grid} .ag-center-cols-container .ag-row[row-index='{row}'] .ag-cell[col-id='{column}']")
    cell.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def hiring_row(page, role: str, territory: str) -> int:
    """The row index of (role, territory) in the hiring-plan grid, read from its pinned columns."""
    rows = page.locator("#hiring-grid .ag-pinned-left-cols-container .ag-row")
    rows.first.wait_for()
    for k in range(rows.count()):
        cells = rows.nth(k).locator(".ag-cell")
        if cells.nth(0).inner_text() == role and cells.nth(1).inner_text() == territory:
            return int(rows.nth(k).get_attribute("row-index"))
    raise AssertionError(f"no hiring-plan row {role} / {territory}")


def run_simulation(page, replications: int) -> tuple[str, str]:
    """Run from the Simulate page and wait for the cards; the bookings card's text and the job's id."""
    go(page, "Simulate")
    page.fill("#sim-replications", str(replications))
    page.click("#sim-run")
    page.wait_for_selector("#sim-message:has-text('started')")
    started = re.search(r"started (\S+):", page.inner_text("#sim-message")).group(1)
    page.wait_for_selector(f"#sim-results:has-text('{started}') #chart-bookings .main-svg")
    return page.inner_text("#card-bookings"), started


def bookings_mean(card: str) -> float:
    """The mean on a money card (``28.7m`` or ``812k``)."""
    value = re.search(r"([\d.,]+)([kmb]?)\n", card.lower())
    assert value, card
    return float(value.group(1).replace(",", "")) * {"": 1, "k": 1e3, "m": 1e6, "b": 1e9}[value.group(2)]


def test_editing_the_hiring_plan_changes_the_simulated_kpis_and_charts(page, server):
    page.wait_for_selector("#scenario-status:has-text('valid')")
    shot(page, "1-scenario")
    before, first = run_simulation(page, 3)
    shot(page, "2-simulate")
    # hover gives the values: plotly draws a hover label over the bookings chart
    box = page.locator("#chart-bookings .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.locator("#chart-bookings .hoverlayer text:has-text('mean')").first.wait_for(state="attached")
    assert re.search(r"mean [\d,]+", page.locator("#chart-bookings .hoverlayer").text_content())
    cost_before = page.inner_text("#card-cost")
    go(page, "Scenario")
    row = hiring_row(page, "sdr", "north")
    edit_cell(page, "hiring-grid", row, "2027-01", "12")
    page.wait_for_selector("#scenario-edits:has-text('--set roles.sdr.hiring_plan.2027-01={north: 12}')")
    assert "valid" in page.inner_text("#scenario-status")
    after, _ = run_simulation(page, 3)
    # twelve more SDRs in the busiest territory from February (hiring lag 1), same seed: more outbound meetings
    # (6 a month per ramped SDR) and more first-touch capacity, so more bookings; and their salaries, 12 x 6,000 a
    # month over 17 months (backfilled when they leave), less the ramp-free cost already there: over a million more
    assert bookings_mean(after) > bookings_mean(before), (before, after)
    assert bookings_mean(page.inner_text("#card-cost")) - bookings_mean(cost_before) > 1.0e6
    assert page.locator("#chart-headcount .scatterlayer .trace").count() >= 2
    # against the first run, paired by replication (same seed): the compare table and the overlaid charts
    page.locator("#sim-compare").click()
    page.locator(f"[role=option]:has-text('{first}')").click()
    page.wait_for_selector("#compare-table tbody tr")
    cost_row = page.locator("#compare-table tr:has(td:text-is('cost'))").inner_text()
    assert "*" in cost_row and "+" in cost_row  # more salaries, an interval that excludes 0
    shot(page, "2-simulate-after-edit")


def test_bad_cells_and_uploads_are_answered_in_the_page_and_the_app_keeps_working(page, server, tmp_path):
    url, runs, _ = server
    page.wait_for_selector("#scenario-status:has-text('valid')")
    edit_cell(page, "hiring-grid", hiring_row(page, "sdr", "south"), "2027-03", "-2")
    page.wait_for_selector("#scenario-errors .error")
    assert "roles.sdr.hiring_plan.2027-03.south: Input should be greater than or equal to 0 (got -2)" in page.inner_text("#scenario-errors")
    assert "not valid" in page.inner_text("#scenario-status")
    go(page, "Simulate")
    written = sorted(runs.rglob("*"))
    page.click("#sim-run")
    page.wait_for_selector("#sim-message .error")
    assert "hiring_plan.2027-03.south" in page.inner_text("#sim-message")
    assert sorted(runs.rglob("*")) == written  # nothing written
    go(page, "Scenario")
    page.click("#scenario-reset")
    page.wait_for_selector("#scenario-status:has-text('— valid')")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfunnel: [unclosed\n")
    page.set_input_files("#scenario-upload input[type=file]", str(bad))
    page.wait_for_selector("#scenario-message .error")
    message = page.inner_text("#scenario-message")
    assert message.startswith("bad.yaml: line 3, column 1: not valid YAML"), message
    assert "Traceback" not in page.content()
    wrong = tmp_path / "wrong_key.yaml"
    wrong.write_text((ROOT / "scenarios" / "library" / "baseline.yaml").read_text().replace("horizon_months: 18", "horizon_monhts: 18"))
    page.set_input_files("#scenario-upload input[type=file]", str(wrong))
    page.wait_for_selector("#scenario-message:has-text('horizon_monhts: unknown key')")
    shot(page, "5-scenario-bad-upload")
    # the tab kept its scenario, and the server still answers
    assert "baseline (shipped)" in page.inner_text("#scenario-status")
    assert urllib.request.urlopen(url, timeout=5).status == 200
    page.fill("#set-input", "funnel.sql_rate.smb=0.31")
    page.click("#set-apply")
    page.wait_for_selector("#scenario-edits:has-text('--set funnel.sql_rate.smb=0.31')")


def test_two_tabs_keep_their_own_edits_and_a_run_outlives_its_tab(browser, server):
    url = server[0]
    first, second = browser.new_context(), browser.new_context()
    for context in (first, second):
        context.set_default_timeout(TIMEOUT)
    one, two = first.new_page(), second.new_page()
    one.goto(url)
    two.goto(url)
    one.wait_for_selector("#scenario-status:has-text('valid')")
    edit_cell(one, "hiring-grid", hiring_row(one, "sdr", "west"), "2027-02", "3")
    one.wait_for_selector("#scenario-edits:has-text('roles.sdr.hiring_plan.2027-02={west: 3}')")
    two.reload()
    two.wait_for_selector("#scenario-status:has-text('valid')")
    assert two.inner_text("#scenario-edits") == "(none)"
    assert "0 edit(s)" in two.inner_text("#scenario-status")
    go(one, "Simulate")
    one.fill("#sim-replications", "12")
    one.click("#sim-run")
    one.wait_for_selector("#sim-message .note")
    started = re.search(r"started (\S+):", one.inner_text("#sim-message")).group(1)
    first.close()  # the tab goes; the run does not
    go(two, "Runs")
    row = two.locator(f"#runs-list tr:has-text('{started}')")
    row.wait_for()
    two.wait_for_selector(f"#runs-list tr:has-text('{started}') :has-text('done')", timeout=120_000)
    assert "12/12" in row.inner_text()
    shot(two, "6-runs")
    two.locator("#runs-open").click()
    two.locator(f"[role=option]:has-text('{started}')").click()
    two.wait_for_selector("#runs-view #chart-bookings .main-svg")
    shot(two, "7-run-opened")
    second.close()


def test_a_headcount_plan_is_shown_with_its_iterations_and_constraints_and_an_impossible_target_explained(page, server):
    page.fill("#set-input", "horizon_months=12")  # a shorter horizon keeps the plan quick
    page.click("#set-apply")
    page.wait_for_selector("#scenario-status:has-text('12 months')")
    page.fill("#set-input", "initial_state.warm_up_months=0")  # from an empty start the SDR queue grows: hires pay
    page.click("#set-apply")
    page.wait_for_selector("#scenario-message:has-text('set initial_state.warm_up_months')")
    go(page, "Plan headcount")
    page.fill("#hc-target", "")
    page.click("#hc-run")
    page.wait_for_selector("#hc-message .error:has-text('Target bookings: required with the cost objective')")
    page.fill("#hc-target", "60000000")
    page.fill("#hc-replications", "4")
    page.click("#hc-run")
    page.wait_for_selector("#hc-results h3:has-text('Status: infeasible')", timeout=120_000)
    explained = page.inner_text("#hc-results")
    assert "the target cannot be reached; these limits conflict" in explained and "relax" in explained
    page.fill("#hc-target", "18000000")  # as in tests/test_headcount.py: about 16 million without hiring
    page.click("#hc-run")
    page.wait_for_selector("#hc-results h3:has-text('Status: met')", timeout=180_000)
    page.wait_for_selector("#hc-chart .main-svg")
    shot(page, "3-headcount")
    assert page.locator("#hc-iterations tbody tr").count() >= 1
    # the plan's table adds up to the hires the summary line states
    hires = sum(int(row.locator("td").nth(3).inner_text()) for row in page.locator("#hc-plan tbody tr").all())
    stated = sum(int(n) for n in re.findall(r"(?:sdr|ae) (\d+)", page.inner_text("#hc-summary")))
    assert hires == stated > 0
    assert "Binding constraints" in page.inner_text("#hc-results")


def write_case(folder: Path) -> tuple[Path, Path]:
    """36 units on a 6 × 6 grid around Harrisburg, workload rising to the east, all owned today by the western rep."""
    units = ["id,name,workload,lat,lon,owner"]
    for i in range(6):
        for j in range(6):
            units.append(f"u{i}{j},cell {i}-{j},{10 + 4 * j},{40.0 + 0.1 * i:.2f},{-77.0 + 0.12 * j:.2f},{'r1' if j < 4 else 'r2'}")
    (folder / "units.csv").write_text("\n".join(units) + "\n")
    (folder / "reps.csv").write_text("id,home_unit\nr1,u21\nr2,u24\nr3,u45\n")
    return folder / "units.csv", folder / "reps.csv"


def test_a_territory_case_is_designed_and_mapped_and_bad_csvs_are_refused(page, server, tmp_path):
    url, runs, _ = server
    units, reps = write_case(tmp_path)
    go(page, "Territories")
    bad = tmp_path / "units_bad.csv"
    bad.write_text("id,workload,lat,lon\nu1,5,40,-75\nu2,6,40.1,-75,extra\n")
    page.set_input_files("#terr-upload-units input[type=file]", str(bad))
    page.wait_for_selector("#terr-upload-message .error")
    assert page.inner_text("#terr-upload-message") == "units_bad.csv row 3: 5 cells, but the header has 4 columns (extra 'extra')"
    nan = tmp_path / "units_nan.csv"
    nan.write_text("id,workload,lat,lon\nu21,5,40,-75\nu24,n/a,40.1,-75\nu45,3,40.2,-75\n")
    page.set_input_files("#terr-upload-units input[type=file]", str(nan))
    page.set_input_files("#terr-upload-reps input[type=file]", str(reps))
    page.wait_for_selector("#terr-file-reps:has-text('3 rows')")
    written = sorted(runs.rglob("*"))
    page.click("#terr-run")
    page.wait_for_selector("#terr-message .error")
    assert "units_nan.csv row 3 column 'workload': 'n/a' is not a number" in page.inner_text("#terr-message")
    assert sorted(runs.rglob("*")) == written
    shot(page, "8-territories-bad-csv")
    page.set_input_files("#terr-upload-units input[type=file]", str(units))
    page.wait_for_selector("#terr-file-units:has-text('36 rows')")
    page.get_by_text("simulate today's and the new design").click()
    page.fill("#terr-replications", "1")
    page.click("#terr-run")
    page.wait_for_selector("#terr-map .main-svg", timeout=120_000)
    shot(page, "4-territories")
    summary = page.inner_text("#terr-summary")
    moved = int(re.search(r"(\d+) units moved", summary).group(1))
    assert moved > 0  # today r3 owns nothing: balance must move units to it
    # the map draws every unit once per panel (today, design) and rings the moved ones
    points = page.locator("#terr-map .scatterlayer .trace .points path")
    assert points.count() >= 2 * 36 + moved
    assert "no balance" in page.inner_text("#terr-price")
    simulated = page.inner_text("#terr-simulation")
    assert "today" in simulated and "optimized" in simulated
    # the job's folder is the command's complete set: every file listed in its completeness marker
    marker = json.loads(max(runs.glob("web/*territories*/complete.json")).read_text())
    assert {"assignment.csv", "summary.json", "simulation.csv"} <= set(marker["files"]), marker


def test_an_automation_portfolio_is_chosen_within_the_budget_and_a_bad_catalogue_refused(page, server, tmp_path):
    page.fill("#set-input", "horizon_months=6")  # a short horizon: few candidate starts, short simulations
    page.click("#set-apply")
    page.wait_for_selector("#scenario-status:has-text('6 months')")
    go(page, "Automation")
    bad = tmp_path / "tools.yaml"
    bad.write_text("items:\n  a: {effect: {kind: crm_automation, admin_time_freed: 0.3}, monthly_cost: -100, requires: [b]}\n")
    page.set_input_files("#auto-upload input[type=file]", str(bad))
    page.wait_for_selector("#auto-message .error")
    assert "tools.yaml: items.a.monthly_cost: Input should be greater than or equal to 0 (got -100)" in page.inner_text("#auto-message")
    page.fill("#auto-budget", "60000")
    page.fill("#auto-replications", "3")
    page.click("#auto-run")
    page.wait_for_selector("#auto-results #auto-chart .main-svg", timeout=180_000)
    shot(page, "9-automation")
    spend, budget = re.search(r"spend (\S+) of (\S+)", page.inner_text("#auto-results h3")).groups()
    assert bookings_mean(f"x\n{spend}\n") <= bookings_mean(f"x\n{budget}\n") == 60000
