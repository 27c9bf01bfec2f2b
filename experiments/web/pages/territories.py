"""Territories: upload units and reps (and distances, adjacency), choose the balance and the objective, then the
map (units coloured by rep, moved units ringed, rep homes as stars), each rep's loads against its share, the price
of balance, and today's design against the new one, simulated from this tab's scenario. The same optimizer and
the same files as ``salesops optimize territories``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update
from plotly.subplots import make_subplots

from experiments.output import output_folder
from experiments.territory_command import PRICE_SCALES
from experiments.web import scenario_state as ss
from experiments.web.app import Context, Page, errors, follow_jobs, job_area, table
from experiments.web.charts import COLORS, base_layout
from experiments.web.jobs import Job, JobError
from experiments.web.pages.scenario import current
from scenarios import ScenarioError

FILES = (("units", "Units CSV (id, attributes, lat/lon, owner, locked)", True), ("reps", "Reps CSV (id, home_unit or lat/lon, weight)", True),
         ("distances", "Distances CSV (from, to, distance), optional", False), ("adjacency", "Adjacency CSV (unit, neighbor), optional", False))
#: Unit columns that are not attributes to balance.
NOT_ATTRIBUTES = {"id", "lat", "lon", "latitude", "longitude", "owner", "locked", "name"}
OBJECTIVES = ("compactness", "disruption", "weighted", "compactness,disruption")


def layout(context: Context, state: dict | None, jobs: dict | None) -> Any:
    uploads = [
        html.Div([dcc.Upload(html.Button(label), id=f"terr-upload-{kind}"), html.Div(id=f"terr-file-{kind}", className="hint")], className="upload")
        for kind, label, _ in FILES
    ]
    return html.Div([
        html.H2("Territories"),
        html.P("Each unit (an account, a county, a postcode) goes to exactly one rep, balanced within the tolerance of each "
               "rep's share, as compact as possible, moving as few units as possible.", className="hint"),
        dcc.Store(id="terr-files", storage_type="memory"),
        html.Div(uploads, className="uploads"),
        html.Div(id="terr-upload-message"),
        html.Div([
            html.Label(["Balance attribute", dcc.Dropdown(id="terr-balance", options=[], placeholder="upload units first")]),
            html.Label(["Tolerance (%)", dcc.Input(id="terr-tolerance", type="number", value=10, min=0, max=100)]),
            html.Label(["Objective", dcc.Dropdown(id="terr-objective", options=list(OBJECTIVES), value="compactness", clearable=False)]),
            html.Label(["Nearest K reps (empty: all)", dcc.Input(id="terr-nearest", type="number", min=1, step=1)]),
            html.Label(["Time limit (s)", dcc.Input(id="terr-time", type="number", value=30, min=1)]),
            dcc.Checklist(id="terr-flags", options=[
                {"label": " contiguous (needs adjacency)", "value": "contiguity"},
                {"label": " price of balance", "value": "price"},
                {"label": " simulate today's and the new design with this tab's scenario", "value": "simulate"},
            ], value=["price"], labelStyle={"display": "flex", "alignItems": "center", "gap": "4px"}),
            html.Label(["Replications per design", dcc.Input(id="terr-replications", type="number", value=3, min=1, max=100, step=1)]),
        ], className="form"),
        html.Button("Design", id="terr-run", className="primary"),
        html.Div(id="terr-message"),
        *job_area("terr", "territories", jobs),
    ])


def _parse(kind: str, filename: str, contents: str) -> Any:
    """The upload as a Table; InputError naming the file, row and column when it cannot be read."""
    from optimizers.territory_inputs import InputError, Table

    raw = ss.decode_upload(filename, contents, lambda name, problems: InputError([f"{name}: {p}" for p in problems]))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError([f"{filename}: not a UTF-8 text file"]) from None
    table = Table.parse(text, filename)
    if "id" not in table.columns and kind in ("units", "reps"):
        raise InputError([f"{filename}: no 'id' column; the header has {', '.join(table.columns)}"])
    return table, text


def read_files(files: dict, attribute: str) -> Any:
    """The validated inputs from the uploaded files; InputError with one line per problem (file, row, column)."""
    from optimizers.territory_inputs import Table, read_inputs

    tables = {kind: Table.parse(entry["text"], entry["name"]) for kind, entry in files.items()}
    return read_inputs(tables["units"], tables["reps"], (attribute,), tables.get("distances"), tables.get("adjacency"))


def territory_work(inputs: Any, attribute: str, tolerance: float, objective: str, nearest: int | None, time_limit: float,
                   flags: list[str], scenario: Any, replications: int):
    """The job: design, explain, price the balance, simulate; the command's files."""
    def work(job: Job, folder: Path) -> dict[str, Any]:
        from optimizers.solve import SolveOptions
        from optimizers.territories import Balance, DesignError, DesignInfeasible, DesignSpec, design_territories, price_of_balance
        from optimizers.territory_scoring import design_summary, simulated_totals

        spec = DesignSpec(balance=(Balance(attribute, tolerance),), objective=tuple(objective.split(",")),
                          contiguity="contiguity" in flags, nearest=nearest)
        try:
            job.message = "solving"
            design = design_territories(inputs, spec, SolveOptions(time_limit=time_limit))
        except DesignError as error:
            raise JobError(str(error)) from None
        except DesignInfeasible as error:
            raise JobError(f"infeasible: {error}") from None
        summary = design_summary(inputs, spec, design, time_limit)
        scores = None
        if "price" in flags:
            job.advance(1, "pricing the balance: re-solving at other tolerances")
            summary["price_of_balance"] = price_of_balance(inputs, spec, PRICE_SCALES, SolveOptions(time_limit=time_limit))
        if "simulate" in flags:
            job.advance(1, f"simulating the designs ({replications} replications each)")
            scores = _simulate(scenario, inputs, design, attribute, replications)
            summary["simulation"] = {"scenario": scenario.name, "replications": replications, "by_design": simulated_totals(scores)}
        with output_folder(folder, "optimize territories") as files:  # the same complete set as the command writes
            files.csv("assignment.csv", design.moves.reset_index(), people=True)
            if scores is not None:
                files.csv("simulation.csv", scores, people=True)
            files.json("summary.json", summary)
            files.commit()
        job.message = f"{design.result.status}: {int(design.moves['moved'].sum())} units moved"
        return {"inputs": inputs, "design": design, "summary": summary, "scores": scores, "attribute": attribute, "tolerance": tolerance}

    return work


def _simulate(scenario: Any, inputs: Any, design: Any, attribute: str, replications: int) -> pd.DataFrame:
    """Today's design (when every unit has an owner) and the new one, simulated from the scenario."""
    from optimizers.territory_scoring import compare_designs, replications_runner

    designs = {"optimized": design.loads[attribute]}
    owners = inputs.units["owner"]
    if owners.notna().all():
        designs = {"today": inputs.units[attribute].groupby(owners).sum().reindex(inputs.reps.index, fill_value=0.0), **designs}
    try:
        return compare_designs(scenario, designs, replications_runner(replications, scenario.seed))
    except (ValueError, ScenarioError) as error:
        raise JobError(f"simulating the design from {scenario.name}: {error}") from None


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("terr-files", "data"), Output("terr-upload-message", "children"),
        *[Output(f"terr-file-{kind}", "children") for kind, *_ in FILES], Output("terr-balance", "options"), Output("terr-balance", "value"),
        *[Input(f"terr-upload-{kind}", "contents") for kind, *_ in FILES],
        *[State(f"terr-upload-{kind}", "filename") for kind, *_ in FILES], State("terr-files", "data"), State("terr-balance", "value"),
        prevent_initial_call=True,
    )
    def upload(*values):
        from dash import callback_context
        from optimizers.territory_inputs import InputError

        contents, names, files, chosen = values[:4], values[4:8], dict(values[8] or {}), values[9]
        kind = callback_context.triggered_id.removeprefix("terr-upload-")
        index = [k for k, *_ in FILES].index(kind)
        if contents[index] is None:
            return (no_update,) * (4 + len(FILES))  # the upload just drawn, nothing chosen
        labels = [no_update] * len(FILES)
        try:
            parsed, text = _parse(kind, names[index] or kind, contents[index] or "")
        except InputError as error:
            files.pop(kind, None)
            labels[index] = ""
            return files, errors(error.problems), *labels, no_update, no_update
        files[kind] = {"name": names[index], "text": text}
        labels[index] = f"{names[index]}: {len(parsed.rows)} rows; columns {', '.join(parsed.columns)}"
        if kind != "units":
            return files, html.Div(), *labels, no_update, no_update
        attributes = [c for c in parsed.columns if c.lower() not in NOT_ATTRIBUTES]
        return files, html.Div(), *labels, attributes, chosen if chosen in attributes else (attributes[0] if attributes else None)

    @app.callback(
        Output("jobs-store", "data", allow_duplicate=True), Output("terr-message", "children"), Output("terr-poll", "disabled"),
        Input("terr-run", "n_clicks"), State("terr-files", "data"), State("terr-balance", "value"), State("terr-tolerance", "value"),
        State("terr-objective", "value"), State("terr-nearest", "value"), State("terr-time", "value"), State("terr-flags", "value"),
        State("terr-replications", "value"), State("scenario-store", "data"), State("jobs-store", "data"), prevent_initial_call=True,
    )
    def start(clicks, files, attribute, tolerance, objective, nearest, time_limit, flags, replications, stored, jobs):
        if not clicks:
            return no_update, no_update, no_update  # the button just drawn, not clicked
        files, flags, problems = files or {}, flags or [], []
        problems += [f"{label.split(' (')[0]}: upload one" for kind, label, needed in FILES if needed and kind not in files]
        if "contiguity" in flags and "adjacency" not in files:
            problems.append("contiguous: needs an adjacency CSV")
        if not attribute:
            problems.append("Balance attribute: pick one of the units' columns")
        if tolerance is None or not 0 <= tolerance < 100:
            problems.append("Tolerance: expected a percentage from 0 to below 100")
        if nearest is not None and (not isinstance(nearest, int) or nearest < 1):
            problems.append("Nearest K: expected a whole number ≥ 1, or empty")
        if time_limit is None or time_limit <= 0:
            problems.append("Time limit: expected a number of seconds > 0")
        if not isinstance(replications, int) or not 1 <= replications <= 100:
            problems.append("Replications: expected a whole number from 1 to 100")
        scenario = None
        if "simulate" in flags:
            try:
                scenario = ss.resolve(current(stored))
            except ScenarioError as error:
                problems += [f"{error.source}: {problem}" for problem in error.problems]
        if not problems:
            from optimizers.territory_inputs import InputError

            try:
                inputs = read_files(files, attribute)
            except InputError as error:
                problems += error.problems
        if problems:
            return no_update, errors(problems), no_update
        work = territory_work(inputs, attribute, tolerance / 100, objective, nearest, float(time_limit), flags, scenario, replications)
        new = context.jobs.submit("territories", files["units"]["name"], work)
        return {**(jobs or {}), "territories": new}, errors(f"started {new}: it goes on if you close this tab (see Runs)", "note"), False

    follow_jobs(app, context, "terr", "territories", lambda job: design_view(job.result))


def design_view(result: dict[str, Any]) -> list[Any]:
    """Map, loads against share, moved units, price of balance and the simulated comparison."""
    inputs, design, summary = result["inputs"], result["design"], result["summary"]
    parts: list[Any] = [html.Div(
        f"{summary['status']}: total distance {summary['total_distance']:,.6g} ({summary['distance']}), {summary['units_moved']} units moved, "
        f"gap {(summary.get('gap') or 0):.2%}", className="status", id="terr-summary")]
    if inputs.has_coordinates:
        parts.append(dcc.Graph(figure=design_map(inputs, design), id="terr-map", config={"displaylogo": False}, className="chart wide"))
    parts.append(dcc.Graph(figure=_loads_chart(summary, result["attribute"], result["tolerance"]), id="terr-loads", config={"displaylogo": False}, className="chart wide"))
    if summary.get("simulation"):
        totals = [{"design": name, **{k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}}
                  for name, values in summary["simulation"]["by_design"].items()]
        parts += [html.H4(f"Simulated from {summary['simulation']['scenario']} ({summary['simulation']['replications']} replications), side by side"),
                  table(totals, "terr-simulation")]
    if summary.get("price_of_balance"):
        rows = [{"tolerance scale": "no balance" if r["scale"] is None else f"{r['scale']}×", "status": r["status"],
                 "objective": r.get("objective"), "note": r.get("reason", "")} for r in summary["price_of_balance"]]
        parts += [html.H4("Price of balance: the first objective at looser and tighter tolerances"), table(rows, "terr-price")]
    moved = design.moves[design.moves["moved"]].drop(columns="moved").reset_index()
    if len(moved):
        parts += [html.H4(f"Moved units ({len(moved)})"), table(moved.head(200).to_dict("records"), "terr-moves")]
    return parts


def design_map(inputs: Any, design: Any) -> go.Figure:
    """Units coloured by rep (today's owners beside the design when known), moved units ringed, homes as stars."""
    units = inputs.units
    panels = [("design", design.assignment)]
    if units["owner"].notna().all():
        panels.insert(0, ("today", units["owner"]))
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=[f"{title}: {len(inputs.reps)} territories, {len(units)} units" for title, _ in panels],
                           horizontal_spacing=0.06)
    colours = {rep: COLORS[i % len(COLORS)] for i, rep in enumerate(inputs.reps.index)}
    names = units["name"] if "name" in units else pd.Series(units.index, index=units.index)
    home_lat = design.centres.map(units["lat"]) if design.centres is not None else inputs.reps["lat"]
    home_lon = design.centres.map(units["lon"]) if design.centres is not None else inputs.reps["lon"]
    for col, (title, owner) in enumerate(panels, 1):
        for rep in inputs.reps.index:
            mine = owner == rep
            figure.add_trace(go.Scatter(
                x=units["lon"][mine], y=units["lat"][mine], mode="markers", marker={"color": colours[rep], "size": 9}, name=str(rep),
                legendgroup=str(rep), showlegend=col == len(panels), text=[f"{u} {names[u]}" for u in units.index[mine]],
                hovertemplate=f"%{{text}}<br>{title}: {rep}<extra></extra>"), row=1, col=col)
        if title == "design":
            moved = design.moves["moved"].to_numpy()
            figure.add_trace(go.Scatter(x=units["lon"][moved], y=units["lat"][moved], mode="markers", name="moved",
                                        marker={"symbol": "circle-open", "size": 15, "color": "black", "line": {"width": 1.5}},
                                        hoverinfo="skip"), row=1, col=col)
            figure.add_trace(go.Scatter(x=home_lon, y=home_lat, mode="markers", name="rep home / centre", text=[str(r) for r in home_lat.index],
                                        marker={"symbol": "star", "size": 18, "color": [colours[r] for r in home_lat.index], "line": {"width": 1, "color": "black"}},
                                        hovertemplate="home of %{text}<extra></extra>"), row=1, col=col)
    aspect = 1 / max(math.cos(math.radians(float(units["lat"].mean()))), 0.1)
    for col in range(1, len(panels) + 1):
        figure.update_yaxes(scaleanchor=f"x{'' if col == 1 else col}", scaleratio=aspect, row=1, col=col)
    figure.update_layout(base_layout("Map") | {"height": 460, "hovermode": "closest", "legend": {"orientation": "v", "y": 1, "x": 1.02}})
    return figure


def _loads_chart(summary: dict[str, Any], attribute: str, tolerance: float) -> go.Figure:
    """Each rep's load of the balanced attribute against its share, with the tolerance band."""
    loads = summary["rep_loads"]
    reps = list(loads)
    figure = go.Figure()
    figure.add_trace(go.Bar(x=reps, y=[loads[r][attribute]["load"] for r in reps], name="load", marker_color=COLORS[0]))
    figure.add_trace(go.Scatter(x=reps, y=[loads[r][attribute]["share"] for r in reps], name="share", mode="markers", marker={"symbol": "line-ew-open", "size": 30, "color": "black"}))
    figure.add_trace(go.Scatter(x=reps, y=[loads[r][attribute]["share"] * (1 + tolerance) for r in reps], name=f"share +{tolerance:.0%}", mode="lines", line={"dash": "dot", "color": "#9ca3af"}))
    figure.add_trace(go.Scatter(x=reps, y=[loads[r][attribute]["share"] * (1 - tolerance) for r in reps], name=f"share −{tolerance:.0%}", mode="lines", line={"dash": "dot", "color": "#9ca3af"}))
    return figure.update_layout(base_layout(f"{attribute}: each rep's load against its share"))


PAGE = Page("/territories", "Territories", layout, register)
