"""Automation: which tools to buy for this tab's scenario, valued by simulation with common random numbers, within
a budget; the chosen portfolio with each value's interval, and every item's best start. The same functions and the
same files as ``salesops optimize automation`` (``portfolio.csv``, ``report.json`` and ``scenario.yaml``)."""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from experiments.automation_command import write_report
from experiments.output import output_folder
from experiments.console import compact_number
from experiments.runner import run_replications
from experiments.web import scenario_state as ss
from experiments.web.app import Context, Page, errors, follow_jobs, job_area, table
from experiments.web.charts import COLORS, base_layout
from experiments.web.jobs import Job, JobError
from experiments.web.pages.scenario import current
from optimizers.automation_catalogue import CatalogueError, load_catalogue
from scenarios import Scenario, ScenarioError
from scenarios.loading import shipped_names

FIELDS = (
    # id, label, default, minimum, maximum, whole
    ("auto-budget", "Budget over the horizon", 150_000, 0, None, False),
    ("auto-margin", "Gross margin on bookings", 1.0, 0, 1, False),
    ("auto-replications", "Paired replications per portfolio", 10, 2, 200, True),
    ("auto-step", "Months between candidate starts", 3, 1, 24, True),
)


def layout(context: Context, state: dict | None, jobs: dict | None) -> Any:
    state = current(state)
    inputs = [html.Label([label, dcc.Input(id=field, type="number", value=default, min=low, max=high)]) for field, label, default, low, high, _ in FIELDS]
    return html.Div([
        html.H2("Automation"),
        html.Div(f"Scenario: {state['source']} ({len(state['set'])} edit(s))", className="status"),
        html.P("Every candidate (a tool at one of its start months) is simulated against the scenario with the same seed, so "
               "its value (margin on bookings less its cost) comes with a 95% interval from paired replications; a MIP picks "
               "the portfolio within the budget, then fresh replications confirm it.", className="hint"),
        dcc.Store(id="auto-catalogue", storage_type="memory"),
        html.Div([
            dcc.Dropdown(id="auto-shipped", options=shipped_names("optimizers", "catalogues"), value="example", clearable=False, style={"width": "220px"}),
            dcc.Upload(html.Button("Upload a catalogue (.yaml)"), id="auto-upload"),
            html.Div(id="auto-catalogue-name", className="hint"),
        ], className="row"),
        html.Div([*inputs, dcc.Checklist(id="auto-flags", options=[{"label": " value pairs of tools together (slower)", "value": "interactions"}],
                                         value=[], labelStyle={"display": "flex", "alignItems": "center", "gap": "4px"})], className="form"),
        html.Button("Choose", id="auto-run", className="primary"),
        html.Div(id="auto-message"),
        *job_area("auto", "automation", jobs),
    ])


def _catalogue(shipped: str | None, uploaded: dict | None) -> Any:
    """The catalogue chosen: an upload (read from a temporary file, labelled by its name), else a shipped one."""
    if not uploaded:
        return load_catalogue(shipped or "example")
    with tempfile.TemporaryDirectory(prefix="salesops-upload-") as folder:
        path = Path(folder) / "catalogue.yaml"
        path.write_text(uploaded["text"], encoding="utf-8")
        try:
            return load_catalogue(path)
        except CatalogueError as error:
            raise CatalogueError(uploaded["name"], error.problems) from None


def automation_work(scenario: Scenario, catalogue: Any, options: Any):
    """The job: value, choose and confirm (each simulated portfolio counted), then the command's files."""
    def work(job: Job, folder: Path) -> dict[str, Any]:
        from optimizers.automation import plan_automation

        try:
            report = plan_automation(scenario, catalogue, options, partial(run_replications, workers=1),
                                     lambda done: setattr(job, "message", f"{done} portfolios simulated"))
        except CatalogueError as error:
            raise JobError("; ".join(f"{error.source}: {p}" for p in error.problems)) from None
        with output_folder(folder, "optimize automation") as files:  # the same complete set as the command's
            write_report(report, catalogue, options, scenario, files)
            files.commit()
        if report.portfolio is None:
            raise JobError(f"no portfolio found: the solver stopped with {report.solve.termination}")
        job.message = f"{len(report.portfolio.starts)} of {len(catalogue.items)} tools chosen"
        return folder

    return work


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("auto-catalogue", "data"), Output("auto-catalogue-name", "children"), Output("auto-message", "children", allow_duplicate=True),
        Input("auto-upload", "contents"), State("auto-upload", "filename"), prevent_initial_call=True,
    )
    def upload(contents, filename):
        if contents is None:
            return no_update, no_update, no_update
        try:
            raw = ss.decode_upload(filename or "upload", contents, CatalogueError)
            uploaded = {"name": filename, "text": raw.decode("utf-8")}
            catalogue = _catalogue(None, uploaded)
        except UnicodeDecodeError:
            return None, "", errors(f"{filename}: not a UTF-8 text file")
        except CatalogueError as error:
            return None, "", errors([f"{error.source}: {problem}" for problem in error.problems])
        return uploaded, f"{filename}: {len(catalogue.items)} tools (used instead of the shipped catalogue)", html.Div()

    @app.callback(
        Output("jobs-store", "data", allow_duplicate=True), Output("auto-message", "children"), Output("auto-poll", "disabled"),
        Input("auto-run", "n_clicks"), State("scenario-store", "data"), State("jobs-store", "data"), State("auto-shipped", "value"),
        State("auto-catalogue", "data"), State("auto-flags", "value"), *[State(field, "value") for field, *_ in FIELDS], prevent_initial_call=True,
    )
    def start(clicks, stored, jobs, shipped, uploaded, flags, budget, margin, replications, step):
        if not clicks:
            return no_update, no_update, no_update
        problems = []
        for (_, label, _, low, high, whole), value in zip(FIELDS, (budget, margin, replications, step)):
            if value is None or (whole and not isinstance(value, int)) or value < low or (high is not None and value > high):
                problems.append(f"{label}: expected {'a whole number' if whole else 'a number'} ≥ {low}" + (f" and ≤ {high}" if high is not None else ""))
        try:
            scenario = ss.resolve(current(stored))
            catalogue = _catalogue(shipped, uploaded)
        except (ScenarioError, CatalogueError) as error:
            problems += [f"{error.source}: {problem}" for problem in error.problems]
        if problems:
            return no_update, errors(problems), no_update
        from optimizers.automation import AutomationOptions

        options = AutomationOptions(budget=float(budget), gross_margin=float(margin), replications=replications, start_step=step,
                                    interactions="interactions" in (flags or []))
        new = context.jobs.submit("automation", scenario.name, automation_work(scenario, catalogue, options))
        return {**(jobs or {}), "automation": new}, errors(f"started {new}: it goes on if you close this tab (see Runs)", "note"), False

    follow_jobs(app, context, "auto", "automation", lambda job: portfolio_view(job.folder))


def portfolio_view(folder: Path) -> list[Any]:
    """The chosen tools with their values and intervals, a chart of them, and every item's best candidate."""
    portfolio = pd.read_csv(folder / "portfolio.csv")
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    confirmed = report.get("confirmed_value") or {}
    parts: list[Any] = [html.H3(f"{len(portfolio)} tools chosen; spend {compact_number(report['budget_use']['total']['spend'])} "
                                f"of {compact_number(report['budget_use']['total']['budget'])}")]
    if confirmed:
        parts.append(html.Div(f"Confirmed by {confirmed['replications']} fresh replications: value {compact_number(confirmed['mean'])} "
                              f"(95% interval {compact_number(confirmed['low'])} to {compact_number(confirmed['high'])})", className="status", id="auto-confirmed"))
    shown_columns = ["item", "kind", "start_month", "spend", "value_mean", "value_low", "value_high", "value_per_currency_unit"]
    rows = [{k: (compact_number(v) if isinstance(v, float) and k != "value_per_currency_unit" else v) for k, v in row.items()}
            for row in portfolio[shown_columns].to_dict("records")]
    parts.append(table(rows, "auto-portfolio") if rows else html.P("No tool is worth its cost within the budget."))
    shown = {name: _shown(item) for name, item in report["items"].items()}
    best = [
        {"item": name, "kind": item["kind"], "start": c["start_month"], "value": compact_number(c["value"]["mean"]),
         "95% interval": f"{compact_number(c['value']['low'])} to {compact_number(c['value']['high'])}", "spend": compact_number(c["spend"]),
         "chosen": "yes" if item["chosen_start"] else ""} if (c := shown[name]) else
        {"item": name, "kind": item["kind"], "start": "–", "value": "cannot start in the horizon", "95% interval": "", "spend": "", "chosen": ""}
        for name, item in report["items"].items()
    ]
    valued = {name: c for name, c in shown.items() if c}
    means = [c["value"]["mean"] for c in valued.values()]
    figure = go.Figure(go.Bar(
        x=list(valued), y=means, marker_color=[COLORS[0] if report["items"][n]["chosen_start"] else "#9ca3af" for n in valued],
        error_y={"type": "data", "symmetric": False, "array": [c["value"]["high"] - m for c, m in zip(valued.values(), means)],
                 "arrayminus": [m - c["value"]["low"] for c, m in zip(valued.values(), means)]},
        hovertemplate="%{x}: %{y:,.0f}<extra></extra>",
    ))
    figure.update_layout(base_layout("Value of each tool at its chosen (or best) start, with its 95% interval (chosen in blue)") | {"hovermode": "closest"})
    parts += [dcc.Graph(figure=figure, id="auto-chart", config={"displaylogo": False}, className="chart wide"),
              html.H4("Every tool at its chosen (or best) start"), table(best, "auto-items")]
    return parts


def _shown(item: dict[str, Any]) -> dict[str, Any] | None:
    """An item's candidate at its chosen start, else its most valuable one; None when it cannot start."""
    candidates = item["candidates"]
    if not candidates:
        return None
    return next((c for c in candidates if c["start_month"] == item["chosen_start"]), max(candidates, key=lambda c: c["value"]["mean"]))


PAGE = Page("/automation", "Automation", layout, register)
