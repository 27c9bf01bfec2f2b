"""Scenario: pick a shipped scenario or upload one (or a calibration), edit the hiring plan, headcount, funnel rates
and tools as tables, see every problem as the command line says it, download the edited scenario."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
from dash import Dash, Input, Output, State, callback_context, dcc, html, no_update

from experiments.web import scenario_state as ss
from experiments.web.app import Context, Page, errors
from scenarios import ScenarioError, shipped_scenarios

DEFAULT = "baseline"


def current(state: dict | None) -> dict:
    """The tab's scenario state; the shipped baseline until the tab picks another."""
    return state or ss.shipped_state(DEFAULT)


def _grid(grid_id: str, rows: list[dict], fixed: list[str], editable: list[str], width: int = 90, fixed_width: int = 130) -> dag.AgGrid:
    columns = [{"field": f, "headerName": f, "pinned": "left", "editable": False, "width": fixed_width} for f in fixed]
    columns += [{"field": f, "headerName": _header(f), "headerTooltip": f, "editable": True, "width": width} for f in editable]
    return dag.AgGrid(
        id=grid_id, rowData=rows, columnDefs=columns, defaultColDef={"resizable": True, "sortable": False},
        dashGridOptions={"stopEditingWhenCellsLoseFocus": True, "domLayout": "autoHeight", "rowHeight": 30, "headerHeight": 32,
                         "tooltipShowDelay": 300},
        style={"width": "100%"}, className="ag-theme-alpine",
    )


def _header(field: str) -> str:
    """A month column as ``Mar 27`` (narrow enough for 18 months on a laptop); other columns as they are."""
    if len(field) == 7 and field[4] == "-" and field[:4].isdigit() and field[5:].isdigit():
        return ("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()[int(field[5:]) - 1]) + " " + field[2:4]
    return field


def layout(context: Context, state: dict | None, jobs: dict | None) -> Any:
    return html.Div([
        html.H2("Scenario"),
        html.P("Start from a shipped scenario or upload your own; edit the tables; every other page uses this tab's "
               "scenario. Edits stay in this browser tab.", className="hint"),
        html.Div([
            dcc.Dropdown(id="scenario-pick", options=shipped_scenarios(), placeholder="Pick a shipped scenario", clearable=False,
                         style={"width": "260px"}),
            dcc.Upload(html.Button("Upload a scenario (.yaml) or calibration (.json)"), id="scenario-upload", multiple=False),
            html.Button("Reset edits", id="scenario-reset"),
            html.Button("Download YAML", id="scenario-download-button"),
            dcc.Download(id="scenario-download"),
        ], className="row"),
        html.Div(id="scenario-message"),
        *_with_ids(describe(current(state))),
        html.Div(id="scenario-tables", children=tables(current(state))),
        html.H3("Any other key"),
        html.Div([
            dcc.Input(id="set-input", placeholder="KEY.PATH=VALUE, e.g. roles.ae.ramp=[0.3, 0.6, 0.9]", debounce=False,
                      style={"width": "420px"}),
            html.Button("Apply", id="set-apply"),
        ], className="row"),
        html.H3("Edits, as the command line takes them"),
        html.Pre(id="scenario-edits", className="edits", children=describe(current(state))[2]),
    ])


def describe(state: dict) -> tuple[str, Any, str]:
    """The status line, the problems (as the command line words them) and the edits as ``--set`` lines."""
    try:
        scenario = ss.resolve(state)
        status = f"{state['source']}: {scenario.name}, {scenario.horizon_months} months from {scenario.start}, {len(state['set'])} edit(s) — valid"
        problems = errors([])
    except ScenarioError as error:
        status = f"{state['source']}: {len(state['set'])} edit(s) — not valid, fix the problems below"
        problems = errors([f"{error.source}: {problem}" for problem in error.problems])
    return status, problems, "\n".join(f"--set {line}" for line in ss.overrides(state)) or "(none)"


def _with_ids(described: tuple[str, Any, str]) -> list[Any]:
    status, problems, _ = described
    return [html.Div(status, id="scenario-status", className="status"), html.Div(problems, id="scenario-errors")]


def tables(state: dict) -> list[Any]:
    """The editable tables of the scenario as edited so far."""
    try:
        data = ss.effective_data(state)
    except ScenarioError:
        data = state["base"]
    months = ss.months(data)
    territories = list(data.get("territories") or {})
    segments = [*(data.get("segments") or {}), "default"]
    parts = [
        html.H3("Hiring plan: requisitions by role, territory and month"),
        html.P("'all' spreads a month's count over the territories by lead share. Double-click a cell to edit.", className="hint"),
        _grid("hiring-grid", ss.hiring_rows(data), ["role", "territory"], months, 84),
        html.Div([
            html.Div([html.H3("Headcount at the start"), _grid("headcount-grid", ss.headcount_rows(data), ["role"], territories)], className="half"),
            html.Div([html.H3("Funnel rates by segment"), _grid("rates-grid", ss.rate_rows(data), ["rate"], segments, 110, 160)], className="half"),
        ], className="row top"),
    ]
    tools = ss.tool_rows(data)
    parts.append(html.H3("Tools (automation)"))
    if tools:
        parts.append(_grid("tools-grid", tools, ["tool", "kind"], ["start_month", "one_time_cost", "monthly_cost", "monthly_cost_per_rep"], 150))
    else:
        parts.append(html.P("No automation tools in this scenario: add one with 'Any other key' "
                            "(e.g. automation.routing={kind: follow_up, start_month: 2027-03, response_reduction: 0.5}).", className="hint"))
        parts.append(html.Div(_grid("tools-grid", [], ["tool"], [], 150), style={"display": "none"}))
    return parts


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("scenario-store", "data"), Output("scenario-message", "children"), Output("scenario-tables", "children"),
        Input("scenario-pick", "value"), Input("scenario-upload", "contents"), Input("scenario-reset", "n_clicks"),
        Input("set-apply", "n_clicks"), Input("set-input", "n_submit"),
        Input("hiring-grid", "cellValueChanged"), Input("headcount-grid", "cellValueChanged"),
        Input("rates-grid", "cellValueChanged"), Input("tools-grid", "cellValueChanged"),
        State("scenario-upload", "filename"), State("set-input", "value"), State("scenario-store", "data"),
        prevent_initial_call=True,
    )
    def edit(pick, upload, _reset, _apply, _submit, hiring, headcount, rates, tools, filename, set_text, stored):
        state = current(stored)
        trigger = callback_context.triggered_id
        if not callback_context.triggered or callback_context.triggered[0]["value"] is None:
            return no_update, no_update, no_update  # a table or control just drawn, not a person's change
        try:
            if trigger == "scenario-pick":
                new, note = ss.shipped_state(pick), f"loaded {pick} (shipped)"
            elif trigger == "scenario-upload":
                new, note = ss.uploaded_state(filename or "upload", upload or "", state), f"loaded {filename}"
            elif trigger == "scenario-reset":
                new, note = {**state, "set": {}}, "edits cleared"
            elif trigger in ("set-apply", "set-input"):
                key, sep, value = (set_text or "").partition("=")
                if not sep or not key.strip():
                    return no_update, errors(f"{set_text or ''!r}: expected KEY.PATH=VALUE"), no_update
                new, note = ss.with_edit(state, key.strip(), value.strip()), f"set {key.strip()}"
            else:  # a cell: the grid already shows the new value, so it is not rebuilt
                change = _change({"hiring-grid": hiring, "headcount-grid": headcount, "rates-grid": rates, "tools-grid": tools}[trigger])
                if change is None:
                    return no_update, no_update, no_update
                key, value = _cell_edit(trigger, change, ss.effective_data(state))
                return ss.with_edit(state, key, value), html.Div(), no_update
        except ScenarioError as error:
            return no_update, errors([f"{error.source}: {problem}" for problem in error.problems]), no_update
        return new, errors(note, "note"), tables(new)

    @app.callback(
        Output("scenario-status", "children"), Output("scenario-errors", "children"), Output("scenario-edits", "children"),
        Input("scenario-store", "data"),
    )
    def show(stored):
        return describe(current(stored))

    @app.callback(
        Output("scenario-download", "data"), Output("scenario-message", "children", allow_duplicate=True),
        Input("scenario-download-button", "n_clicks"), State("scenario-store", "data"), prevent_initial_call=True,
    )
    def download(clicks, stored):
        if not clicks:
            return no_update, no_update
        state = current(stored)
        try:
            scenario = ss.resolve(state)
        except ScenarioError as error:
            return no_update, errors([f"cannot download: {error.source}: {p}" for p in error.problems])
        return {"content": ss.scenario_yaml(scenario), "filename": f"{scenario.name}.yaml"}, errors("downloaded", "note")


def _change(value: Any) -> dict | None:
    """The one cell change of a grid's ``cellValueChanged`` (a list in recent dash-ag-grid)."""
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def _cell_edit(grid: str, change: dict, data: dict) -> tuple[str, str]:
    """The override a changed cell stands for."""
    row, column, value = change["data"], change["colId"], change.get("value")
    if grid == "hiring-grid":
        return ss.hiring_edit(data, row["role"], row["territory"], column, value)
    text = ss.number_text(value)
    if grid == "headcount-grid":
        return f"roles.{row['role']}.headcount.{column}", text
    if grid == "rates-grid":
        return f"funnel.{row['rate']}.{column}", text
    return f"automation.{row['tool']}.{column}", text


PAGE = Page("/", "Scenario", layout, register)
