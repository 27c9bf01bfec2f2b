"""The ``calibrate``, ``backtest`` and ``generate-crm`` commands: files in, files out, one-line errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from calibration import Calibration, CalibrationError, audit, load_mapping, read_export, read_roster
from experiments.backtest import run_backtest
from experiments.cells import write_atomically
from experiments.crm_generator import generate_crm as generate_export
from scenarios import ScenarioError, load_scenario

console = Console()
#: The pipeline snapshot written beside calibration.json (the fragment's ``initial_state.pipeline``).
PIPELINE = "pipeline.csv"
ExportArg = Annotated[Path, typer.Argument(help="the CRM export (CSV)")]
MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="a mapping file, or the name of a shipped one")]
OutOpt = Annotated[Path, typer.Option(help="output folder")]


def _fail(source: str, problems: list[str]) -> typer.Exit:
    for problem in problems:
        typer.echo(f"error: {source}: {problem}", err=True)
    return typer.Exit(2)


def calibrate(
    export: ExportArg,
    mapping: MappingOpt,
    roster: Annotated[Optional[Path], typer.Option(help="rep roster CSV: rep, role, start_date, end_date")] = None,
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="default: the latest date in the data")] = None,
    since: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="use only rows created from this date")] = None,
    out: OutOpt = Path("runs/calibration"),
) -> None:
    """Audit a CRM export and fit its funnel: writes audit.json and quarantine.csv (first, so that they are there
    when the fit fails), then pipeline.csv (open deals, waiting leads and reps at the as-of date) and
    calibration.json, whose scenario fragment names it."""
    try:
        source, model = load_mapping(mapping)
        raw = read_export(export, model, source)
        checked = audit(raw, model, as_of=as_of, since=since)
        reps = read_roster(roster, model) if roster else None
    except CalibrationError as error:
        raise _fail(error.source, error.problems) from None
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "audit.json", json.dumps(checked.to_dict(), indent=2) + "\n")
    write_atomically(out / "quarantine.csv", checked.quarantine_rows().to_csv(index=False))
    try:
        fitted = Calibration().fit(checked, reps)
    except CalibrationError as error:
        raise _fail(error.source, [f"{problem}; see {out / 'audit.json'} and {out / 'quarantine.csv'}" for problem in error.problems]) from None
    calibration = fitted.to_dict(snapshot=PIPELINE)
    write_atomically(out / PIPELINE, fitted.snapshot(checked.used, reps).to_csv(index=False))
    write_atomically(out / "calibration.json", json.dumps(calibration, indent=2, allow_nan=False) + "\n")
    console.print(_summary(calibration))
    for note in _notes(calibration):
        console.print(note, highlight=False)
    written = ", ".join(str(out / name) for name in ("calibration.json", "audit.json", "quarantine.csv", PIPELINE))
    console.print(f"wrote {written}", highlight=False)


def _summary(calibration: dict) -> Table:
    """The figures a reader checks first, in a table that fits 80 columns; notes follow it (``_notes``)."""
    audit_part, kpis = calibration["audit"], calibration["kpis"]
    table = Table(title=f"calibration as of {calibration['data']['as_of'] or '(undated)'}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("figure", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("95% interval / n", justify="right", overflow="fold")
    table.add_row("rows in / used / quarantined", f"{audit_part['rows_in']:,} / {audit_part['used']:,} / {audit_part['quarantined']:,}", "")
    for reason, count in audit_part["by_reason"].items():
        table.add_row(f"  {reason}", f"{count:,}", "")
    won = kpis["won_among_closed"]
    table.add_row(f"won among closed, from {calibration['data']['entry']}", f"{won['rate']:.1%}",
                  f"{won['interval'][0]:.1%}–{won['interval'][1]:.1%} / {won['closed']:,}")
    last_name, last = list(calibration["spans"].items())[-1]
    pooled = last["pooled"]
    if pooled.get("time_to_win"):
        label = "ever won" if pooled["outcome_model"] in ("cure", "no_cure") else "won"
        table.add_row(f"{label} ({pooled['outcome_model'].replace('_', ' ')})", f"{pooled['rate']:.1%}",
                      f"{pooled['interval'][0]:.1%}–{pooled['interval'][1]:.1%} / {pooled['rows']:,}")
        for outcome, key in (("win", "time_to_win"), ("lose", "time_to_lose")):
            if pooled.get(key):
                times = pooled[key]
                table.add_row(f"days {last['from']}→{outcome}, median", _days(times["median"]),
                              f"{_days(times['median_interval'][0])}–{_days(times['median_interval'][1])} / {times['n_events']:,}")
        table.add_row("  open at the as-of date", f"{pooled['open']:,}", "")
    elif calibration["cycle_days"]:
        duration = calibration["cycle_days"]
        km = duration["kaplan_meier"]
        table.add_row("days created→closed, median", _days(km["median"]),
                      f"{_days(km['median_interval'][0])}–{_days(km['median_interval'][1])} / {duration['n_events']:,}")
    for span_name, span in calibration["spans"].items():
        pooled = span["pooled"]
        interval = pooled.get("interval")
        table.add_row(f"rate {span_name}", f"{pooled['rate']:.1%}",
                      (f"{interval[0]:.1%}–{interval[1]:.1%} / " if interval else "") + f"{span['rows']['used']:,}" if "rows" in span else "")
    for fit, rows in calibration["audit"].get("fits", {}).items():
        if rows["not_usable"]:
            table.add_row(f"  {fit}: rows not usable", f"{rows['not_usable']:,}", f"of {rows['entered']:,}")
    for name, source in calibration["arrivals"]["lead_sources"].items():
        table.add_row(f"leads/month {name}", f"{source['monthly_volume']:,.0f}", f"trend {source['trend']:+.1%} / {source['n']:,}")
    return table


def _notes(calibration: dict) -> list[str]:
    return [f"note: {note}" for note in calibration["audit"]["notes"] + calibration["notes"]]


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def backtest(
    export: ExportArg,
    mapping: MappingOpt,
    cut: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="fit on what was known before this date")],
    since: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="use only rows created from this date")] = None,
    end: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="last month compared; default: last full month with a close")] = None,
    replications: Annotated[int, typer.Option("--replications", "-n", min=1)] = 20,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    out: OutOpt = Path("runs/backtest"),
) -> None:
    """Fit up to a cut date, simulate forward, and compare monthly won deals and bookings with what happened."""
    try:
        source, model = load_mapping(mapping)
        raw = read_export(export, model, source)
        result = run_backtest(raw, model, cut.date(), replications, seed, end.date() if end else None,
                              since.date() if since else None, workers)
    except (CalibrationError, ScenarioError) as error:
        raise _fail(error.source, error.problems) from None
    out.mkdir(parents=True, exist_ok=True)
    result.monthly.to_csv(out / "backtest_monthly.csv", index=False)
    (out / "backtest.json").write_text(json.dumps(result.metrics, indent=2) + "\n", encoding="utf-8")
    (out / "calibration.json").write_text(json.dumps(result.calibration, indent=2) + "\n", encoding="utf-8")
    table = Table(title=f"back-test from {result.metrics['cut']}, {result.metrics['months']} months")
    for column in ("measure", "MAPE", "bias", "inside P10–P90", "actual", "forecast"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for measure in ("won", "bookings"):
        if measure in result.metrics:
            m = result.metrics[measure]
            table.add_row(measure, "–" if m["mape"] is None else f"{m['mape']:.1%}", "–" if m["bias"] is None else f"{m['bias']:+.1%}",
                          f"{m['inside_p10_p90']:.0%}", f"{m['actual_total']:,.0f}", f"{m['forecast_total']:,.0f}")
    console.print(table)
    console.print(f"wrote {out / 'backtest_monthly.csv'}, {out / 'backtest.json'}, {out / 'calibration.json'}", highlight=False)


def generate_crm(
    scenario: Annotated[str, typer.Argument(help="a scenario file, or the name of a shipped scenario")] = "baseline",
    seed: Annotated[Optional[int], typer.Option(min=0, help="seed; default: the scenario's")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="override a scenario key, e.g. horizon_months=12")] = [],  # noqa: B006
    out: OutOpt = Path("runs/crm"),
) -> None:
    """Write a realistic CRM export (crm_export.csv) and rep roster (roster.csv) simulated from a known scenario."""
    try:
        model = load_scenario(scenario, set_)
    except ScenarioError as error:
        raise _fail(error.source, error.problems) from None
    export, reps = generate_export(model, seed)
    out.mkdir(parents=True, exist_ok=True)
    export.to_csv(out / "crm_export.csv", index=False)
    reps.to_csv(out / "roster.csv", index=False)
    console.print(f"wrote {len(export):,} leads to {out / 'crm_export.csv'} and {len(reps)} reps to {out / 'roster.csv'} "
                  "(read it with --mapping generated)", highlight=False)
