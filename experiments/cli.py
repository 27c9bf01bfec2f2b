"""The ``salesops`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine import Results
from experiments.analysis_commands import compare, report
from experiments.automation_command import automation
from experiments.calibration_commands import calibrate, generate_crm
from experiments.console import MAX_LEADS, check_run_size_or_exit, edge_errors, load_scenario_or_exit, tracking_failed
from experiments.forecast_command import backtest, forecast
from experiments.headcount_command import headcount
from experiments.output import output_folder, simulation_files
from experiments.runner import interrupt_on_sigterm, replicate
from experiments.sweep_command import TrackOpt, TrackingUriOpt, sweep
from experiments.territory_command import territories
from experiments.tracking import make_tracker, track_simulation
from experiments.web.command import serve
from experiments.winloss_command import winloss
from scenarios import shipped_scenarios

app = typer.Typer(help="Simulate and optimize a sales organisation.", no_args_is_help=True, add_completion=False)
optimize_app = typer.Typer(help="Find hiring plans, territory designs and automation portfolios.", no_args_is_help=True)
app.add_typer(optimize_app, name="optimize")
console = Console()


@app.callback()
def main() -> None:
    """Simulate and optimize a sales organisation."""
    interrupt_on_sigterm()  # a SIGTERM stops every command as Ctrl-C does: workers stopped, nothing half-written

HEADLINE = {
    "leads": ("Leads", "{:,.0f}"),
    "won": ("Deals won", "{:,.0f}"),
    "bookings": ("Bookings", "{:,.0f}"),
    "win_rate": ("Win rate", "{:.1%}"),
    "cycle_days_mean": ("Sales cycle (days)", "{:.1f}"),
    "response_hours_mean": ("Response time (h)", "{:.1f}"),
    "response_hours_p90": ("Response time P90 (h)", "{:.1f}"),
    "cost": ("Cost", "{:,.0f}"),
}


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="a scenario file, or the name of a shipped scenario")],
    replications: Annotated[int, typer.Option("--replications", "-n", min=1, help="Monte Carlo replications")] = 10,
    seed: Annotated[Optional[int], typer.Option(min=0, help="seed; default: the scenario's")] = None,
    out: Annotated[Path, typer.Option(help="folder for monthly.csv, summary.json and the rest")] = Path("runs/latest"),
    set_: Annotated[list[str], typer.Option("--set", help="override a key: roles.ae.hiring_plan.2027-03=4")] = [],  # noqa: B006
    workers: Annotated[int, typer.Option(min=1, help="processes to run replications in")] = 1,
    lead_log: Annotated[bool, typer.Option("--lead-log", help="also write leads.csv, one row per lead")] = False,
    parameter_uncertainty: Annotated[bool, typer.Option(
        help="replications draw a calibrated scenario's parameters from the fit's uncertainty")] = True,
    track: TrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    max_leads: Annotated[float, typer.Option(min=1, help="refuse scenarios estimated to hold more leads per replication")] = MAX_LEADS,
) -> None:
    """Simulate a scenario over its horizon and write the monthly results and their summary."""
    set_ = [*set_, *([] if parameter_uncertainty else ["parameter_uncertainty=false"])]
    model = load_scenario_or_exit(scenario, set_)
    seed = model.seed if seed is None else seed
    check_run_size_or_exit(model, scenario, max_leads)
    with edge_errors():
        tracker = make_tracker(track, tracking_uri)
        with output_folder(out, "simulate") as files:
            with Progress(
                TextColumn("simulating {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=True,
            ) as progress:
                task = progress.add_task(model.name, total=replications)
                runs = replicate(model, replications, seed, workers, lambda _: progress.advance(task), lead_log)
            results = Results.from_replications(runs)
            simulation_files(files, results, runs, model, seed)
            paths = files.commit()
    try:
        track_simulation(tracker, scenario, set_, model, seed, results, paths, out)
    except Exception as error:  # noqa: BLE001 - any store failure after the work: one line, the files stay
        tracking_failed(error, out)
    console.print(_headline(results, model.name, replications, model.horizon_months))
    console.print(f"wrote {', '.join(str(p) for p in paths)}", highlight=False)


@app.command("scenarios")
def list_scenarios() -> None:
    """List the shipped example scenarios."""
    for name in shipped_scenarios():
        console.print(name, highlight=False)


def _headline(results: Results, name: str, replications: int, months: int) -> Table:
    table = Table(title=f"{name}: {months} months, {replications} replications")
    for column in ("KPI", "mean", "P10", "P50", "P90"):
        table.add_column(column, justify="left" if column == "KPI" else "right")
    for kpi, (label, fmt) in HEADLINE.items():
        row = results.summary.loc[kpi]
        table.add_row(label, *("–" if row[s] != row[s] else fmt.format(row[s]) for s in ("mean", "p10", "p50", "p90")))
    return table


# The other commands, each in its own module, after simulate and scenarios in the help.
for name, command in (("generate-crm", generate_crm), ("calibrate", calibrate), ("forecast", forecast),
                      ("backtest", backtest), ("winloss", winloss), ("sweep", sweep), ("compare", compare), ("report", report),
                      ("serve", serve)):
    app.command(name)(command)
for name, command in (("headcount", headcount), ("territories", territories), ("automation", automation)):
    optimize_app.command(name)(command)
