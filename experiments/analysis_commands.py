"""The ``compare`` and ``report`` commands: paired differences between runs, and an HTML report of one run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from engine import SUMMARY_KPIS
from experiments.compare import CompareError, load_run, paired_differences, pairing_note
from experiments.console import compact_number, edge_errors, fail, tracking_failed
from experiments.output import for_people, write_atomically
from experiments.sweep_command import ExperimentOpt, TrackOpt, TrackingUriOpt
from experiments.tracking import DEFAULT_EXPERIMENT, DEFAULT_TRACKING_URI, make_tracker

console = Console()


def compare(
    runs: Annotated[list[str], typer.Argument(help="simulate folders, sweep cell files or MLflow run ids; the first is the reference")],
    kpi: Annotated[list[str], typer.Option("--kpi", help="KPIs to compare (repeatable); default: all horizon KPIs")] = [],  # noqa: B006
    out: Annotated[Optional[Path], typer.Option(help="also write the differences to this CSV file")] = None,
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", help="MLflow store holding run ids")] = DEFAULT_TRACKING_URI,
) -> None:
    """Paired differences of the horizon KPIs against the first run, per replication, with 95% intervals."""
    if len(runs) < 2:
        fail(["compare needs at least two runs"])
    unknown = [name for name in kpi if name not in SUMMARY_KPIS]
    if unknown:
        fail([f"--kpi {name}: unknown KPI; expected one of {', '.join(SUMMARY_KPIS)}" for name in unknown])
    try:
        loaded = [load_run(reference, tracking_uri) for reference in runs]
    except CompareError as error:
        fail([str(error)])
    reference, tables = loaded[0], []
    for other in loaded[1:]:
        frame = paired_differences(reference, other, tuple(kpi) or SUMMARY_KPIS)
        console.print(_table(reference.label, other.label, frame))
        if note := pairing_note(reference, other):
            console.print(f"note: {note}", style="yellow", highlight=False)
        tables.append(frame.assign(run_a=reference.label, run_b=other.label))
    console.print("* the 95% interval of B − A excludes 0: a real difference at that level", highlight=False)
    if out is not None:
        with edge_errors():
            write_atomically(out, for_people(pd.concat(tables, ignore_index=True)).to_csv(index=False))
        console.print(f"wrote {out}", highlight=False)


def _table(a: str, b: str, frame: pd.DataFrame) -> Table:
    table = Table(title=f"B − A  (A = {a}, B = {b}; paired by replication)")
    table.add_column("KPI", no_wrap=True)
    for column in ("A mean", "B mean", "B − A", "95% interval", "relative", "n"):
        table.add_column(column, justify="right")
    for row in frame.itertuples():
        interval = "–" if math.isnan(row.ci_low) else f"[{compact_number(row.ci_low)}, {compact_number(row.ci_high)}]"
        relative = "–" if math.isnan(row.relative) else f"{row.relative:+.1%}"
        mark = " *" if row.excludes_zero else ""
        table.add_row(row.kpi, compact_number(row.a), compact_number(row.b), compact_number(row.difference) + mark, interval, relative, str(row.n))
    return table


def report(
    folder: Annotated[Path, typer.Argument(help="a folder written by salesops simulate")],
    out: Annotated[Optional[Path], typer.Option(help="the HTML file (default: FOLDER/report.html)")] = None,
    track: TrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    experiment: ExperimentOpt = DEFAULT_EXPERIMENT,
) -> None:
    """Write a self-contained HTML report: headline KPIs, bookings fan chart, headcount, response time, utilisation, funnel."""
    from experiments.report import ReportError, write_report  # matplotlib loads only for this command

    with edge_errors():
        tracker = make_tracker(track, tracking_uri, experiment)
        try:
            path, plots = write_report(folder, out)
        except ReportError as error:
            fail([str(error)])
    console.print(f"wrote {path} and {len(plots)} plots in {folder / 'plots'}", highlight=False)
    try:
        run_id = tracker.attach(folder, [*plots, path], "report", f"report {folder.name}")
    except Exception as error:  # noqa: BLE001 - any store failure after the work: one line, the files stay
        tracking_failed(error, folder)
    if run_id:
        console.print(f"logged the report and plots to MLflow run {run_id}", highlight=False)
