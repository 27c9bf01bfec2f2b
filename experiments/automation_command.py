"""``salesops optimize automation``: the portfolio of automation investments worth buying, valued by simulation."""

from __future__ import annotations

import math
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
from optimizers.automation_catalogue import Catalogue, CatalogueError, load_catalogue
from scenarios import Scenario

if TYPE_CHECKING:
    from optimizers.automation import AutomationOptions, AutomationReport, Candidate

console = Console()

PORTFOLIO_COLUMNS = [
    "item", "kind", "start_month", "one_time_cost", "monthly_cost", "monthly_cost_per_rep", "spend",
    "value_mean", "value_low", "value_high", "value_per_currency_unit",
]


def automation(
    scenario: Annotated[str, typer.Argument(help="a scenario file, or the name of a shipped scenario")],
    catalogue: Annotated[str, typer.Option(help="a catalogue file, or the name of a shipped one (example)")],
    budget: Annotated[float, typer.Option(min=0.0, help="most the chosen tools may cost over the horizon")],
    out: Annotated[Path, typer.Option(help="folder for portfolio.csv, scenario.yaml and report.json")],
    quarter_budget: Annotated[list[str], typer.Option(help="spend limit per quarter: N for every quarter, or 2027Q3=N; repeatable")] = [],  # noqa: B006
    gross_margin: Annotated[float, typer.Option(min=0.0, max=1.0, help="margin on bookings")] = 1.0,
    replications: Annotated[int, typer.Option("--replications", "-n", min=2, help="paired replications per simulated portfolio")] = 20,
    seed: Annotated[Optional[int], typer.Option(min=0, help="seed of the valuation; default: the scenario's (the confirmation uses seed + 1)")] = None,
    start_step: Annotated[int, typer.Option(min=1, help="months between candidate starts of an item without start_months")] = 3,
    interactions: Annotated[bool, typer.Option(help="value pairs of tools together")] = True,
    interaction_confidence: Annotated[float, typer.Option(min=0.0, max=0.999, help="an interaction enters the model when its interval at this level excludes zero; 0: all do")] = 0.8,
    racing: Annotated[bool, typer.Option(help="stop simulating portfolios clearly dominated (paired 95% test)")] = True,
    batch: Annotated[int, typer.Option(min=1, help="replications simulated at a time (racing decides between batches)")] = 5,
    max_checked: Annotated[int, typer.Option(min=1, help="most portfolios simulated jointly to check the choice")] = 12,
    workers: Annotated[int, typer.Option(min=1, help="processes to simulate in")] = 1,
    time_limit: Annotated[float, typer.Option(min=0.1, help="seconds for the solve")] = 30.0,
    gap: Annotated[float, typer.Option(min=0.0, help="relative MIP gap to stop at")] = 1e-6,
    set_: Annotated[list[str], typer.Option("--set", help="override a scenario key")] = [],  # noqa: B006
) -> None:
    """Choose automation investments and their start months under the budgets, maximising the simulated margin."""
    require_finite(budget=budget, time_limit=time_limit, gap=gap)
    model = load_scenario_or_exit(scenario, set_)
    check_run_size_or_exit(model, scenario)
    try:
        items = load_catalogue(catalogue)
    except CatalogueError as error:
        fail(f"{error.source}: {problem}" for problem in error.problems)
    every, by_quarter = _quarter_budgets(quarter_budget)
    from optimizers.automation import AutomationOptions, plan_automation  # Pyomo loads only for this command

    options = AutomationOptions(
        budget=budget, quarter_budget=every, quarter_budgets=by_quarter, gross_margin=gross_margin,
        replications=replications, seed=seed, start_step=start_step, interactions=interactions,
        interaction_confidence=interaction_confidence, time_limit=time_limit, rel_gap=gap,
        batch=batch, racing=racing, max_checked=max_checked,
    )
    with edge_errors(), output_folder(out, "optimize automation") as files:
        with console.status("valuing the catalogue by simulation…") as status, executor(workers) as pool:  # one pool for every check
            def progress(done: int) -> None:
                status.update(f"valuing the catalogue by simulation: {done} portfolios simulated")

            try:
                report = plan_automation(model, items, options, partial(run_replications, pool=pool), progress)
            except CatalogueError as error:
                fail(f"{catalogue}: {problem}" for problem in error.problems)
        write_report(report, items, options, model, files)
        files.commit()
    console.print(_summary(report, items, model))
    if report.portfolio is None:
        fail([f"no portfolio found: the solver stopped with {report.solve.termination}"], code=1)


def _quarter_budgets(values: list[str]) -> tuple[float | None, dict[str, float]]:
    """``N`` (every quarter) and ``2027Q3=N`` (one quarter) from the repeated option; exit 2 on a bad one."""
    every, named, problems = None, {}, []
    for value in values:
        quarter, sep, amount = value.rpartition("=")
        try:
            number = float(amount)
        except ValueError:
            number = -1.0
        if not math.isfinite(number) or number < 0 or (sep and not (len(quarter) == 6 and quarter[:4].isdigit() and quarter[4] == "Q" and quarter[5] in "1234")):
            problems.append(f"--quarter-budget: expected N or YYYYQn=N with N ≥ 0, got {value!r}")
        elif sep:
            named[quarter] = number
        else:
            every = number
    if problems:
        fail(problems)
    return every, named


def write_report(report: AutomationReport, catalogue: Catalogue, options: AutomationOptions, scenario: Scenario, files: RunFiles) -> None:
    """portfolio.csv (the chosen items), scenario.yaml (the scenario with them, runnable as it is) and report.json."""
    valuation, portfolio = report.valuation, report.portfolio
    chosen = [valuation.candidate(item, start) for item, start in (portfolio.starts.items() if portfolio else [])]
    files.csv("portfolio.csv", pd.DataFrame([_row(c, catalogue, scenario) for c in chosen], columns=PORTFOLIO_COLUMNS), people=True)
    if report.scenario is not None:
        files.yaml("scenario.yaml", report.scenario.model_dump(mode="json"))
    spend = portfolio.spend_by_quarter if portfolio else {}
    from optimizers.automation import quarter_limits

    limits = quarter_limits(valuation.quarters, options)
    document = {
        "options": {
            "budget": options.budget, "quarter_budgets": limits, "gross_margin": options.gross_margin,
            "replications": options.replications, "seed": report.seed, "confirm_seed": report.confirm_seed,
            "start_step": options.start_step, "interactions": options.interactions,
            "interaction_confidence": options.interaction_confidence, "batch": options.batch, "racing": options.racing,
            "max_checked": options.max_checked,
        },
        "baseline": valuation.baseline,
        "items": {name: _item(name, catalogue, report, scenario) for name in catalogue.items},
        "interactions": [
            {"items": list(i.items), "value": i.value.as_dict(), "in_model": i.value.significant_at(options.interaction_confidence)}
            for i in valuation.interactions
        ],
        "chosen": {item: scenario.month_label(start) for item, start in portfolio.starts.items()} if portfolio else {},
        "model_value": portfolio.model_value if portfolio else None,
        "check": _check(report, scenario),
        "replications": {"run": report.replications_run, "saved_by_racing": report.replications_saved},
        "confirmed_value": report.confirmed.as_dict() | {"replications": report.confirmed.replications} if report.confirmed else None,
        "confirmed_kpis": report.confirmed_kpis,
        "budget_use": {
            "total": {"budget": options.budget, "spend": round(portfolio.spend, 2) if portfolio else 0.0},
            "by_quarter": {q: {"budget": limits.get(q), "spend": round(spend.get(q, 0.0), 2)} for q in dict.fromkeys(valuation.quarters)},
        },
        "solver": report.solve.as_dict(),
    }
    files.json("report.json", document)


def _check(report: AutomationReport, scenario: Scenario) -> dict[str, object] | None:
    """The portfolios simulated jointly, the chosen one against the runner-up, and why the check stopped."""
    check = report.check
    if check is None:
        return None

    def label(starts: dict[str, int]) -> dict[str, str]:
        return {item: scenario.month_label(start) for item, start in starts.items()}

    return {
        "simulated_jointly": len(check.checked),
        "portfolios": [
            {
                "items": label(c.portfolio.starts), "model_value": round(c.portfolio.model_value, 2),
                "simulated_value": c.value.as_dict(), "replications": c.value.replications, "dominated": c.dominated,
                "chosen": i == check.chosen,
            }
            for i, c in enumerate(check.checked)
        ],
        "chosen_minus_runner_up": (
            check.comparison.as_dict() | {"replications": check.comparison.replications, "runner_up": label(check.checked[check.runner_up].portfolio.starts)}
            if check.comparison is not None and check.runner_up is not None else None
        ),
        "stopped": check.stopped,
        "guarantee": _guarantee(report),
    }


def _guarantee(report: AutomationReport) -> str:
    """What the check promises, in words."""
    check = report.check
    if check.stopped == "bound":
        return (
            f"every portfolio not simulated is rated by the model at most {compact_number(check.next_model_value)}, below "
            f"{compact_number(check.bound)}, the lower end of the chosen portfolio's 95% interval; among the "
            f"{len(check.checked)} simulated jointly with common random numbers, the chosen one has the highest mean"
        )
    if check.stopped == "exhausted":
        return f"every feasible portfolio ({len(check.checked)}) was simulated jointly; the chosen one has the highest mean"
    return f"the check stopped at --max-checked ({len(check.checked)} portfolios): portfolios the model rates higher may remain unsimulated"


def _row(candidate: Candidate, catalogue: Catalogue, scenario: Scenario) -> dict[str, object]:
    item = catalogue.items[candidate.item]
    return {
        "item": candidate.item, "kind": item.effect.kind, "start_month": scenario.month_label(candidate.start),
        "one_time_cost": item.one_time_cost, "monthly_cost": item.monthly_cost, "monthly_cost_per_rep": item.monthly_cost_per_rep,
        "spend": round(candidate.total_cost, 2), "value_mean": round(candidate.value.mean, 2), "value_low": round(candidate.value.low, 2),
        "value_high": round(candidate.value.high, 2), "value_per_currency_unit": _ratio(candidate),
    }


def _ratio(candidate: Candidate) -> float | None:
    ratio = candidate.value_per_currency_unit
    return None if ratio is None else round(ratio, 3)


def _item(name: str, catalogue: Catalogue, report: AutomationReport, scenario: Scenario) -> dict[str, object]:
    """An item's candidates, each with its value, spend, value per currency unit and KPIs without and with it."""
    valuation, portfolio = report.valuation, report.portfolio
    chosen = portfolio.starts.get(name) if portfolio else None
    return {
        "kind": catalogue.items[name].effect.kind,
        "available": name not in valuation.unavailable,
        "requires": catalogue.prerequisites(name),
        "chosen_start": None if chosen is None else scenario.month_label(chosen),
        "candidates": [
            {
                "start_month": scenario.month_label(c.start), "value": c.value.as_dict(), "spend": round(c.total_cost, 2),
                "value_per_currency_unit": _ratio(c), "kpis": c.kpis,
            }
            for c in valuation.candidates if c.item == name
        ],
    }


def _summary(report: AutomationReport, catalogue: Catalogue, scenario: Scenario) -> Table:
    """One row per item: the chosen start (or the best one), its value with interval, spend and value per unit."""
    valuation, portfolio = report.valuation, report.portfolio
    starts = portfolio.starts if portfolio else {}
    table = Table(title=f"automation portfolio: solver {report.solve.status}, {len(starts)} of {len(catalogue.items)} items chosen")
    for column in ("item", "start", "value", "95% interval", "spend", "per unit", "chosen"):
        table.add_column(column, justify="left" if column == "item" else "right", no_wrap=column != "item", overflow="fold")
    for name in catalogue.items:
        candidates = [c for c in valuation.candidates if c.item == name]
        if not candidates:
            table.add_row(name, "–", "cannot start in the horizon", "", "", "", "")
            continue
        shown = valuation.candidate(name, starts[name]) if name in starts else max(candidates, key=lambda c: c.value.mean)
        ratio = shown.value_per_currency_unit
        table.add_row(
            name, scenario.month_label(shown.start), compact_number(shown.value.mean),
            f"{compact_number(shown.value.low)}…{compact_number(shown.value.high)}", compact_number(shown.total_cost),
            "–" if ratio is None else f"{ratio:.2f}", "yes" if name in starts else "",
        )
    if portfolio and report.confirmed:
        confirmed, check = report.confirmed, report.check
        table.caption = (
            f"model value {compact_number(portfolio.model_value)}; confirmed by {confirmed.replications} fresh "
            f"replications: {compact_number(confirmed.mean)} ({compact_number(confirmed.low)} to "
            f"{compact_number(confirmed.high)}); spend {compact_number(portfolio.spend)}. "
            f"{len(check.checked)} portfolios simulated jointly; "
        )
        if check.comparison is not None:
            comparison = check.comparison
            table.caption += (
                f"chosen − runner-up {compact_number(comparison.mean)} ({compact_number(comparison.low)} to "
                f"{compact_number(comparison.high)}, paired 95%); "
            )
        table.caption += f"{report.replications_saved} replications saved by racing ({report.replications_run} run)"
    return table
