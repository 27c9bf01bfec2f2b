"""Simulate: run this tab's scenario as a job (progress bar; it goes on if the tab closes), then KPI cards with
P10–P90 and fan charts by month; overlay and paired differences against another run (``salesops compare``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from engine import Results
from experiments.compare import CompareError, load_run, paired_differences, pairing_note
from experiments.console import compact_number
from experiments.output import output_folder, simulation_files
from experiments.report import ReportError, RunFolder
from experiments.runner import replicate
from experiments.tracking import TrackingError, make_tracker, track_simulation, tracking_message
from experiments.web import scenario_state as ss
from experiments.web.app import Context, Page, errors, follow_jobs, job_area, job_id, table
from experiments.web.charts import fan_charts, kpi_cards
from experiments.web.jobs import Job, JobError
from experiments.web.pages.scenario import current
from experiments.web.run_store import simulation_folders
from scenarios import Scenario, ScenarioError

MAX_REPLICATIONS = 1000


def layout(context: Context, state: dict | None, jobs: dict | None) -> Any:
    state = current(state)
    try:
        scenario = ss.resolve(state)
        status, seed = f"Scenario: {state['source']} ({len(state['set'])} edit(s))", scenario.seed
    except ScenarioError:
        status, seed = f"Scenario: {state['source']} — not valid: fix it on the Scenario page", None
    return html.Div([
        html.H2("Simulate"),
        html.Div(status, className="status"),
        html.Div([
            html.Label(["Replications ", dcc.Input(id="sim-replications", type="number", value=20, min=1, max=MAX_REPLICATIONS, step=1)]),
            html.Label(["Seed ", dcc.Input(id="sim-seed", type="number", value=seed, min=0, step=1)]),
            html.Button("Run", id="sim-run", className="primary"),
        ], className="row"),
        html.Div(id="sim-message"),
        *job_area("sim", "simulate", jobs),
        html.H3("Compare with another run"),
        html.Div([
            dcc.Dropdown(id="sim-compare", placeholder="Pick a run to compare with (B − A, A = the other run)",
                         options=_run_options(context), style={"width": "560px"}),
        ], className="row"),
        html.Div(id="sim-compare-view"),
    ])


def _run_options(context: Context) -> list[dict[str, str]]:
    return [{"label": str(folder.relative_to(context.runs)), "value": str(folder)} for folder in simulation_folders(context.runs)]


def simulation_work(scenario: Scenario, replications: int, seed: int, source: str, edits: list[str], tracking_uri: str | None):
    """The job: replications in order, the files ``salesops simulate`` writes, the MLflow run when tracking."""
    def work(job: Job, folder: Path) -> None:
        try:
            tracker = make_tracker(False, tracking_uri)  # a store that cannot be used fails the job before the work
        except TrackingError as error:
            raise JobError(f"tracking: {error}") from error
        runs = replicate(scenario, replications, seed, 1, lambda r: job.advance(1, f"replication {job.done + 1} of {replications}"))
        results = Results.from_replications(runs)
        with output_folder(folder, "simulate") as files:  # the same complete set as salesops simulate writes
            simulation_files(files, results, runs, scenario, seed)
            paths = files.commit()
        job.message = f"{replications} replications of {scenario.name}"  # the page reads the files, not this process's memory
        try:
            track_simulation(tracker, source, edits, scenario, seed, results, paths, job.folder or folder)
        except Exception as error:  # noqa: BLE001 - a store failing after the work: said, and the finished run kept
            job.message += f"; tracking failed ({tracking_message(error)}), the files are kept"

    return work


def results_view(folder: Path, title: str | None = None) -> list[Any]:
    """KPI cards and fan charts of a simulation folder."""
    try:
        run = RunFolder.read(folder)
    except (ReportError, OSError, ValueError) as error:
        return [errors(f"{folder}: cannot be read ({error})")]
    summary = run.summary
    heading = title or f"{summary.get('scenario', '')}: {summary.get('replications', '')} replications, seed {summary.get('seed', '')}"
    charts = [dcc.Graph(figure=figure, id=f"chart-{key}", config={"displaylogo": False}, className="chart") for key, figure in fan_charts([("", run.bands)])]
    return [html.H3(heading), html.Div(str(folder), className="hint"), kpi_cards(summary.get("kpis", {})), html.Div(charts, className="charts")]


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("jobs-store", "data", allow_duplicate=True), Output("sim-message", "children"), Output("sim-poll", "disabled"),
        Input("sim-run", "n_clicks"), State("scenario-store", "data"), State("sim-replications", "value"), State("sim-seed", "value"),
        State("jobs-store", "data"), prevent_initial_call=True,
    )
    def start(clicks, stored, replications, seed, jobs):
        if not clicks:
            return no_update, no_update, no_update  # the button just drawn, not clicked
        state = current(stored)
        problems = []
        if not isinstance(replications, int) or not 1 <= replications <= MAX_REPLICATIONS:
            problems.append(f"replications: expected a whole number from 1 to {MAX_REPLICATIONS}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            problems.append("seed: expected a whole number ≥ 0 (or empty for the scenario's)")
        try:
            scenario = ss.resolve(state)
        except ScenarioError as error:
            problems += [f"{error.source}: {problem}" for problem in error.problems]
        if problems:
            return no_update, errors(problems), no_update
        seed = scenario.seed if seed is None else seed
        work = simulation_work(scenario, replications, seed, state["source"], ss.overrides(state), context.tracking_uri)
        new = context.jobs.submit("simulate", scenario.name, work, total=replications)
        return {**(jobs or {}), "simulate": new}, errors(f"started {new}: it goes on if you close this tab (see Runs)", "note"), False

    follow_jobs(app, context, "sim", "simulate", lambda job: results_view(job.folder))

    @app.callback(
        Output("sim-compare-view", "children"), Input("sim-compare", "value"), State("jobs-store", "data"), prevent_initial_call=True,
    )
    def compare(other, jobs):
        job = context.jobs.get(job_id(jobs, "simulate"))
        if not other:
            return html.Div()
        if job is None or job.status != "done" or job.folder is None:
            return errors("run a simulation first: it is compared with the run picked here")
        return comparison_view(Path(other), job.folder)


def comparison_view(a: Path, b: Path) -> list[Any]:
    """Fan charts of A and B overlaid, and the paired differences B − A per horizon KPI with 95% intervals."""
    try:
        run_a, run_b = load_run(str(a), ""), load_run(str(b), "")
        bands_a, bands_b = RunFolder.read(a).bands, RunFolder.read(b).bands
    except (CompareError, ReportError, OSError, ValueError) as error:
        return [errors(str(error))]
    frame = paired_differences(run_a, run_b)
    rows = [
        {
            "KPI": row.kpi, "A mean": compact_number(row.a), "B mean": compact_number(row.b),
            "B − A": compact_number(row.difference) + (" *" if row.excludes_zero else ""),
            "95% interval": "–" if math.isnan(row.ci_low) else f"[{compact_number(row.ci_low)}, {compact_number(row.ci_high)}]",
            "relative": "–" if math.isnan(row.relative) else f"{row.relative:+.1%}", "n": row.n,
        }
        for row in frame.itertuples()
    ]
    note = pairing_note(run_a, run_b)
    charts = [dcc.Graph(figure=figure, config={"displaylogo": False}, className="chart")
              for _, figure in fan_charts([("A", bands_a), ("B", bands_b)])]
    return [
        html.H3(f"B − A, paired by replication (A = {a.name}, B = {b.name})"),
        errors(note, "note") if note else html.Div(),
        table(rows, "compare-table"),
        html.Div("* the 95% interval of B − A excludes 0: a real difference at that level", className="hint"),
        html.Div(charts, className="charts"),
    ]


PAGE = Page("/simulate", "Simulate", layout, register)
