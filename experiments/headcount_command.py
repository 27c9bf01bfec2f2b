"""``salesops optimize headcount``: the cheapest hiring plan that reaches a bookings target, checked by simulation."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from experiments.console import check_run_size_or_exit, compact_number, edge_errors, fail, load_scenario_or_exit, require_finite
from experiments.output import RunFiles, output_folder
from experiments.runner import executor, run_replications

if TYPE_CHECKING:
    from optimizers.headcount import HeadcountOptions, HeadcountReport

console = Console()


def headcount(
    scenario: Annotated[str, typer.Argument(help="a scenario file, or the name of a shipped scenario")],
    out: Annotated[Path, typer.Option(help="folder for plan.csv, scenario.yaml and report.json")],
    target_bookings: Annotated[Optional[float], typer.Option(min=0.0, help="bookings to reach over the horizon")] = None,
    confidence: Annotated[float, typer.Option(min=0.0, max=1.0, help="share of replications that must reach it")] = 0.8,
    budget: Annotated[Optional[float], typer.Option(min=0.0, help="most the whole horizon may cost")] = None,
    objective: Annotated[str, typer.Option(help="cost (least cost reaching the target) or margin")] = "cost",
    gross_margin: Annotated[float, typer.Option(min=0.0, max=1.0, help="margin on bookings, for --objective margin")] = 1.0,
    max_utilization: Annotated[float, typer.Option(min=0.1, max=1.0, help="busiest the plan may count on reps being")] = 0.85,
    replications: Annotated[int, typer.Option("--replications", "-n", min=2, help="replications per simulated check")] = 40,
    seed: Annotated[Optional[int], typer.Option(min=0, help="seed; default: the scenario's")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes to simulate in")] = 1,
    time_limit: Annotated[float, typer.Option(min=0.1, help="seconds per solve")] = 30.0,
    gap: Annotated[float, typer.Option(min=0.0, help="relative MIP gap to stop at")] = 0.01,
    set_: Annotated[list[str], typer.Option("--set", help="override a scenario key")] = [],  # noqa: B006
) -> None:
    """Plan hires per role, territory and month: least cost reaching the target with the asked probability."""
    require_finite(target_bookings=target_bookings, budget=budget, time_limit=time_limit, gap=gap)
    if objective not in ("cost", "margin"):
        fail([f"--objective: expected cost or margin, got {objective!r}"])
    if objective == "cost" and target_bookings is None:
        fail(["--target-bookings: required with --objective cost"])
    from optimizers.headcount import HeadcountOptions, plan_headcount  # Pyomo loads only for this command

    model = load_scenario_or_exit(scenario, set_)
    check_run_size_or_exit(model, scenario)
    options = HeadcountOptions(
        target_bookings=target_bookings, confidence=confidence, budget=budget, objective=objective,  # type: ignore[arg-type]
        gross_margin=gross_margin, max_utilization=max_utilization, replications=replications, seed=seed,
        time_limit=time_limit, rel_gap=gap,
    )
    with edge_errors(), output_folder(out, "optimize headcount") as files:
        with console.status("planning: solve, simulate, correct…"), executor(workers) as pool:  # one pool for every check
            report = plan_headcount(model, options, partial(run_replications, pool=pool))
        write_report(report, options, files)
        files.commit()  # a plan that failed leaves no scenario.yaml of an earlier one
    console.print(_summary(report, options))
    if report.status != "met":
        fail([report.message], code=1)


def write_report(report: HeadcountReport, options: HeadcountOptions, files: RunFiles) -> None:
    """plan.csv, scenario.yaml (the scenario with the plan, runnable as it is) and report.json."""
    rows = report.plan.rows() if report.plan else []
    files.csv("plan.csv", pd.DataFrame(rows, columns=["month", "role", "territory", "hires"]), people=True)
    if report.scenario is not None:
        files.yaml("scenario.yaml", report.scenario.model_dump(mode="json"))
    document = {
        "status": report.status,
        "message": report.message,
        "options": asdict(options),
        "chosen_iteration": None if report.chosen is None else report.chosen + 1,
        "plan_cost_expected": report.plan.expected_cost if report.plan else None,
        "simulated": asdict(report.check) if report.check else None,
        "final_model": report.final_model,
        "hires": {role: report.plan.total(role) for role in report.plan.headcount} if report.plan else {},
        "expected_headcount_at_month_end": report.plan.headcount if report.plan else {},
        "iterations": [
            {
                "target_scale": it.target_scale,
                "expected_bookings": it.expected_bookings,
                "expected_cost": it.expected_cost,
                "expected_response_hours": it.expected_response_hours,
                "simulated": asdict(it.check) if it.check else None,
                "solver": it.solve.as_dict(),
            }
            for it in report.iterations
        ],
        "binding_constraints": report.binding,
        "marginal_value_of_one_more_hire_slot": report.marginal_values,
        "comparison": report.naive,
    }
    files.json("report.json", document)


def _summary(report: HeadcountReport, options: HeadcountOptions) -> Table:
    table = Table(title=f"headcount plan: {report.status}, {report.message}")
    columns = ("iteration", "target ×", "bookings model", "bookings sim", "response h model", "response h sim", "P(reach)", "cost sim", "solve s")
    for column in columns:
        table.add_column(column, justify="right")
    for number, it in enumerate(report.iterations, 1):
        check = it.check
        table.add_row(
            f"{number}{' *' if report.chosen == number - 1 else ''}", f"{it.target_scale:.3f}",
            compact_number(it.expected_bookings) if it.expected_bookings is not None else "–",
            compact_number(check.bookings["mean"]) if check else "–",
            f"{it.expected_response_hours:.1f}" if it.expected_response_hours is not None else "–",
            f"{check.response_hours:.1f}" if check else "–",
            f"{check.probability:.0%}" if check else "–",
            compact_number(check.cost["mean"]) if check else "–",
            f"{it.solve.solve_seconds:.1f}" if it.check else it.solve.status,
        )
    if report.plan:
        hires = ", ".join(f"{role} {report.plan.total(role)}" for role in report.plan.headcount)
        table.caption = f"* the plan returned; hires: {hires}"
        if report.final_model and report.check:
            table.caption += (
                f"; the model corrected by every simulation expects {compact_number(report.final_model['expected_bookings'])}"
                f" and {report.final_model['expected_response_hours']:.1f} h for it"
            )
        if (naive := naive_sentence(report)) is not None:
            table.caption += f"; {naive}"
    return table


def naive_sentence(report: HeadcountReport) -> str | None:
    """The naive plan simulated, in words; None when there is none."""
    if not report.naive or not report.naive["naive"]:
        return None
    naive, hires = report.naive["naive"], dict(report.naive["naive_hires"])
    month = hires.pop("month")
    hired = " and ".join(f"{role} {count}" for role, count in hires.items() if count)
    what = f"{hired}, all hired in {month}" if hired else "no hires: on paper, today's reps book the target"
    return f"the naive plan ({what}) reaches the target in {naive['probability']:.0%} at a cost of {compact_number(naive['cost']['mean'])}"
