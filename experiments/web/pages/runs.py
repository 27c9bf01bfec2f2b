"""Runs: every job of this server (running or finished, whichever tab started it), every simulation folder under
the runs folder and, with a tracking store, every MLflow run and sweep; searchable; open one to see its charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from experiments.web.app import Context, Page, errors, table
from experiments.web.pages.simulate import results_view
from experiments.web.run_store import folder_row, mlflow_rows, simulation_folders

COLUMNS = ["id", "kind", "name", "status", "progress", "started", "message"]


def layout(context: Context, state: dict | None, jobs: dict | None) -> Any:
    store = (f"MLflow store {context.tracking_uri}: its runs are listed below; for the rest, "
             f"mlflow ui --backend-store-uri {context.tracking_uri}") if context.tracking_uri else (
        "No tracking store: start the app with --tracking-uri to log runs to MLflow and list the store's runs here.")
    return html.Div([
        html.H2("Runs"),
        html.P(f"Jobs of this server, simulations under {context.runs}. {store}", className="hint"),
        html.Div([
            dcc.Input(id="runs-search", placeholder="search by id, name, kind or status", debounce=False, style={"width": "360px"}),
            dcc.Dropdown(id="runs-open", placeholder="open a run to see its charts", style={"width": "520px"}),
        ], className="row"),
        dcc.Interval(id="runs-poll", interval=1500),
        html.Div(id="runs-table"),
        html.Div(id="runs-view"),
    ])


def rows(context: Context) -> tuple[list[dict[str, Any]], list[str]]:
    """Jobs, then simulation folders not already listed as a job, then MLflow runs; and problems reading them."""
    listed = [job.as_row() for job in context.jobs.jobs()]
    seen = {row["folder"] for row in listed if row["folder"]}
    listed += [folder_row(folder, context.runs) for folder in simulation_folders(context.runs) if str(folder) not in seen]
    problems = []
    if context.tracking_uri:
        found, problem = mlflow_rows(context.tracking_uri)
        listed += found
        problems += [problem] if problem else []
    return listed, problems


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("runs-table", "children"), Output("runs-open", "options"),
        Input("runs-poll", "n_intervals"), Input("runs-search", "value"),
    )
    def show(_ticks, search):
        listed, problems = rows(context)
        words = (search or "").lower().split()
        shown = [row for row in listed if all(any(w in str(row[c]).lower() for c in COLUMNS) for w in words)]
        options = [{"label": f"{row['name']} — {row['id']}", "value": row["folder"]} for row in shown if row["folder"] and Path(row["folder"]).is_dir()]
        return [errors(problems), table(shown, "runs-list", COLUMNS) if shown else html.P("No runs yet.")], options

    @app.callback(Output("runs-view", "children"), Input("runs-open", "value"), State("runs-open", "options"), prevent_initial_call=True)
    def open_run(folder, _options):
        if not folder:
            return html.Div()
        path = Path(folder)
        if not (path / "bands.csv").is_file():
            files = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
            return html.Div([html.H3(path.name), html.P(f"{path}: {', '.join(files)}", className="hint")])
        return results_view(path)


PAGE = Page("/runs", "Runs", layout, register)
