"""Plan headcount: target, confidence, budget and objective for this tab's scenario; the plan as a table and a
chart, each solve-and-simulate iteration, the binding constraints and the marginal value of a hire, in the words of
``salesops optimize headcount`` (the same functions write the same files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update

from experiments.console import compact_number
from experiments.headcount_command import naive_sentence, write_report
from experiments.output import output_folder
from experiments.runner import run_replications
from experiments.web import scenario_state as ss
from experiments.web.app import Context, Page, errors, follow_jobs, job_area, table
from experiments.web.charts import COLORS, base_layout
from experiments.web.jobs import Job
from experiments.web.pages.scenario import current
from scenarios import Scenario, ScenarioError

FIELDS = (
    # id, label, default, minimum, maximum
    ("hc-target", "Target bookings", 30_000_000, 0, None),
    ("hc-confidence", "Confidence", 0.8, 0, 1),
    ("hc-budget", "Budget (empty: none)", None, 0, None),
    ("hc-margin", "Gross margin (objective margin)", 1.0, 0, 1),
    ("hc-replications", "Replications per check", 20, 2, 500),
    ("hc-seed", "Seed (empty: the scenario's)", None, 0, None),
)


def layout(context: Context, state: dict | None, jobs: dict | None) -> Any:
    state = current(state)
    inputs = [html.Label([label, dcc.Input(id=field, type="number", value=default, min=low, max=high)]) for field, label, default, low, high in FIELDS]
    return html.Div([
        html.H2("Plan headcount"),
        html.Div(f"Scenario: {state['source']} ({len(state['set'])} edit(s))", className="status"),
        html.P("The cheapest hiring plan (requisitions per role, territory and month) that reaches the bookings target in at "
               "least the asked share of simulated replications; or, with the margin objective, the most margin.", className="hint"),
        html.Div([*inputs, html.Label(["Objective", dcc.Dropdown(id="hc-objective", options=["cost", "margin"], value="cost", clearable=False)])],
                 className="form"),
        html.Button("Plan", id="hc-run", className="primary"),
        html.Div(id="hc-message"),
        *job_area("hc", "headcount", jobs),
    ])


def headcount_work(scenario: Scenario, options: Any):
    """The job: plan, simulate, correct (each simulated check counted), then the command's files."""
    def work(job: Job, folder: Path) -> Any:
        from optimizers.headcount import plan_headcount

        def run(planned: Scenario, replications: int, seed: int) -> Any:
            job.advance(1, f"simulating check {job.done + 1} ({replications} replications)")
            return run_replications(planned, replications, seed)

        job.message = "solving"
        report = plan_headcount(scenario, options, run)
        with output_folder(folder, "optimize headcount") as files:  # the same complete set as the command's
            write_report(report, options, files)
            files.commit()
        job.message = report.message
        return report

    return work


def register(app: Dash, context: Context) -> None:
    @app.callback(
        Output("jobs-store", "data", allow_duplicate=True), Output("hc-message", "children"), Output("hc-poll", "disabled"),
        Input("hc-run", "n_clicks"), State("scenario-store", "data"), State("jobs-store", "data"), State("hc-objective", "value"),
        *[State(field, "value") for field, *_ in FIELDS], prevent_initial_call=True,
    )
    def start(clicks, stored, jobs, objective, target, confidence, budget, margin, replications, seed):
        if not clicks:
            return no_update, no_update, no_update  # the button just drawn, not clicked
        problems = []
        for (field, label, _, low, high), value, required, whole in zip(
            FIELDS, (target, confidence, budget, margin, replications, seed),
            (objective == "cost", True, False, True, True, False), (False, False, False, False, True, True),
        ):
            if value is None:
                if required:
                    problems.append(f"{label}: required" + (" with the cost objective" if field == "hc-target" else ""))
            elif (whole and not isinstance(value, int)) or value < low or (high is not None and value > high):
                problems.append(f"{label}: expected {'a whole number' if whole else 'a number'} ≥ {low}" + (f" and ≤ {high}" if high is not None else "")
                                + f", got {value}")
        try:
            scenario = ss.resolve(current(stored))
        except ScenarioError as error:
            problems += [f"{error.source}: {problem}" for problem in error.problems]
        if problems:
            return no_update, errors(problems), no_update
        from optimizers.headcount import HeadcountOptions

        options = HeadcountOptions(
            target_bookings=float(target) if target is not None else None, confidence=float(confidence), budget=budget,
            objective=objective, gross_margin=float(margin), replications=replications, seed=seed,
        )
        new = context.jobs.submit("headcount", scenario.name, headcount_work(scenario, options))
        return {**(jobs or {}), "headcount": new}, errors(f"started {new}: it goes on if you close this tab (see Runs)", "note"), False

    follow_jobs(app, context, "hc", "headcount", lambda job: report_view(job.result))


def report_view(report: Any) -> list[Any]:
    """The plan, its chart, the iterations, binding constraints, marginal values and the naive comparison."""
    parts: list[Any] = [html.H3(f"Status: {report.status}"), errors(report.message, "note" if report.status == "met" else "error")]
    plan = report.plan
    if plan is not None:
        rows = plan.rows()
        hires = ", ".join(f"{role} {plan.total(role)}" for role in plan.headcount)
        parts += [html.Div(f"Hires: {hires}; expected bookings {compact_number(plan.expected_bookings)}, expected cost "
                           f"{compact_number(plan.expected_cost)}", id="hc-summary", className="status"),
                  dcc.Graph(figure=_plan_chart(report), id="hc-chart", config={"displaylogo": False}, className="chart wide"),
                  html.H4("Requisitions"), table(rows, "hc-plan") if rows else html.P("No hires needed beyond the scenario's own plan.")]
    iterations = [
        {
            "iteration": f"{number} (returned)" if report.chosen == number - 1 else number, "target ×": f"{it.target_scale:.3f}",
            "model bookings": compact_number(it.expected_bookings) if it.expected_bookings is not None else "–",
            "sim bookings": compact_number(it.check.bookings["mean"]) if it.check else "–",
            "model response h": f"{it.expected_response_hours:.1f}" if it.expected_response_hours is not None else "–",
            "sim response h": f"{it.check.response_hours:.1f}" if it.check else "–",
            "model cost": compact_number(it.expected_cost) if it.expected_cost is not None else "–",
            "P(reach)": f"{it.check.probability:.0%}" if it.check else "–",
            "sim bookings P10–P90": f"{compact_number(it.check.bookings['p10'])}–{compact_number(it.check.bookings['p90'])}" if it.check else "–",
            "solver": it.solve.status, "solve s": f"{it.solve.solve_seconds:.1f}",
        }
        for number, it in enumerate(report.iterations, 1)
    ]
    parts += [html.H4("Iterations: solve, simulate, correct"), table(iterations, "hc-iterations")]
    if report.final_model and report.check:
        parts.append(html.P(
            f"The model corrected by every simulation expects {compact_number(report.final_model['expected_bookings'])} and a "
            f"{report.final_model['expected_response_hours']:.1f} h response for the plan returned; simulated: "
            f"{compact_number(report.check.bookings['mean'])} and {report.check.response_hours:.1f} h.", id="hc-final-model"))
    parts += [html.H4("Binding constraints"), html.Ul([html.Li(line) for line in report.binding]) if report.binding else html.P("none")]
    if report.marginal_values:
        parts += [html.H4("Marginal value of one more hire slot (where recruiting capacity binds)"), table(report.marginal_values, "hc-marginal")]
    if (naive := naive_sentence(report)) is not None:
        parts.append(html.P(f"{naive[0].upper()}{naive[1:]}.", className="hint"))
    return parts


def _plan_chart(report: Any) -> go.Figure:
    """Hires by month (bars per role) and the expected headcount at month end (lines)."""
    plan, scenario = report.plan, report.scenario
    months = [scenario.month_label(k) for k in range(scenario.horizon_months)]
    figure = go.Figure()
    for number, role in enumerate(plan.headcount):
        color = COLORS[number % len(COLORS)]
        hires = [sum(c for (r, _, m), c in plan.hires.items() if r == role and m == month) for month in months]
        figure.add_trace(go.Bar(x=months, y=hires, name=f"{role} hires", marker_color=color, opacity=0.55))
        figure.add_trace(go.Scatter(x=months, y=plan.headcount[role], name=f"{role} expected headcount", line={"color": color}, yaxis="y2"))
    figure.update_layout(barmode="stack", yaxis={"title": "hires"}, yaxis2={"title": "headcount", "overlaying": "y", "side": "right",
                                                                   "tickmode": "auto", "showgrid": False})  # round ticks of its own
    return figure.update_layout(base_layout("The plan: hires by month and expected headcount"))


PAGE = Page("/headcount", "Plan headcount", layout, register)
