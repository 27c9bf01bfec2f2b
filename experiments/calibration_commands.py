"""The ``calibrate`` and ``generate-crm`` commands: files in, files out, one-line errors."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from calibration import Calibration, CalibrationError, audit, load_mapping, read_export, read_roster
from calibration.attributes import segment_by as attribute_segment
from experiments.console import check_run_size_or_exit, edge_errors, error_line, fail
from experiments.crm_generator import generate_crm as generate_export
from experiments.output import RunFiles, output_folder
from scenarios import ScenarioError, load_scenario, read_scenario_data

console = Console()
#: The pipeline snapshot written beside calibration.json (the fragment's ``initial_state.pipeline``).
PIPELINE = "pipeline.csv"
#: The base scenario on the calibration, written with ``--scenario``.
SCENARIO = "scenario.yaml"
ExportArg = Annotated[Path, typer.Argument(help="the CRM export (CSV)")]
MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="a mapping file, or the name of a shipped one")]
OutOpt = Annotated[Path, typer.Option(help="output folder")]


def _fail(source: str, problems: list[str]) -> typer.Exit:
    for problem in problems:
        typer.echo(error_line(f"{source}: {problem}"), err=True)
    return typer.Exit(2)


def calibrate(
    export: ExportArg,
    mapping: MappingOpt,
    roster: Annotated[Optional[Path], typer.Option(help="rep roster CSV: rep, role, start_date, end_date")] = None,
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="default: the latest date in the data")] = None,
    since: Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"], help="use only rows created from this date")] = None,
    out: OutOpt = Path("runs/calibration"),
    segment_by: Annotated[Optional[str], typer.Option("--segment-by", help="fit per level of this mapping attribute instead of the segment")] = None,
    scenario: Annotated[Optional[str], typer.Option(
        "--scenario", help="a base scenario (file or shipped name): also write scenario.yaml, its organisation on "
        "the calibrated funnel from the month after the as-of date, starting from the pipeline")] = None,
) -> None:
    """Audit a CRM export and fit its funnel: writes audit.json and quarantine.csv (first, so that they are there
    when the fit fails), then pipeline.csv (open deals, waiting leads and reps at the as-of date) and
    calibration.json, whose scenario fragment names it; with --scenario, scenario.yaml, runnable as it is."""
    with edge_errors(), output_folder(out, "calibrate") as files:
        try:
            source, model = load_mapping(mapping)
            raw = read_export(export, model, source)
            if segment_by is not None:
                raw, model = attribute_segment(raw, model, export, source, segment_by)
            checked = audit(raw, model, as_of=as_of, since=since)
            reps = read_roster(roster, model) if roster else None
        except CalibrationError as error:
            raise _fail(error.source, error.problems) from None
        written = [files.json("audit.json", checked.to_dict()), files.csv("quarantine.csv", checked.quarantine_rows(), people=True)]
        try:
            fitted = Calibration().fit(checked, reps)
        except CalibrationError as error:
            files.commit()  # the audit explains the failure; a calibration.json of an earlier run does not survive
            raise _fail(error.source, [f"{problem}; see {written[0]} and {written[1]}" for problem in error.problems]) from None
        calibration = fitted.to_dict(snapshot=PIPELINE)
        files.csv(PIPELINE, fitted.snapshot(checked.used, reps))  # header only when nothing is open
        files.json("calibration.json", calibration)
        if scenario is not None:
            files.yaml(SCENARIO, _on_calibration(scenario, checked.as_of))
            _check_loads(files)
        files.commit()
    console.print(_summary(calibration))
    for note in _notes(calibration):
        console.print(note, highlight=False)
    written = ["calibration.json", "audit.json", "quarantine.csv", PIPELINE]
    written += [SCENARIO] if scenario is not None else []
    console.print(f"wrote {', '.join(str(out / name) for name in written)}", highlight=False)


def _on_calibration(base: str, as_of: pd.Timestamp) -> dict:
    """A base scenario's organisation (territories, roles, tools) on the calibrated funnel, segments and lead
    sources (``calibration: calibration.json``), from the first day of the month after the as-of date."""
    if pd.isna(as_of):
        fail(["--scenario: the export is undated, so a scenario cannot start from its as-of date"])
    try:
        _, data = read_scenario_data(base)
    except ScenarioError as error:
        fail(f"{error.source}: {problem}" for problem in error.problems)
    kept = {key: value for key, value in data.items() if key not in ("segments", "lead_sources", "funnel", "initial_state")}
    return {**kept, "name": f"{data.get('name', 'scenario')} calibrated", "start": (as_of.to_period("M") + 1).start_time.date(),
            "calibration": "calibration.json"}


def _check_loads(files: RunFiles) -> None:
    """The staged scenario.yaml loads with the staged calibration and pipeline beside it, or the command fails."""
    with tempfile.TemporaryDirectory(prefix="salesops-check-") as folder:
        for name, staged in files.staged.items():
            if name in (SCENARIO, "calibration.json", PIPELINE):
                shutil.copyfile(staged, Path(folder) / name)
        try:
            load_scenario(Path(folder) / SCENARIO)
        except ScenarioError as error:
            fail(f"--scenario: {SCENARIO} would not load: {problem.replace(folder + '/', '')}" for problem in error.problems)


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
    table.add_row(f"won among closed, from {calibration['data']['entry']}", _percent(won["rate"]),
                  f"{_percent(won['interval'][0])}–{_percent(won['interval'][1])} / {won['closed']:,}")
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
        pace = last.get("closing_pace")
        if pace and pace["month_sd"] is not None:
            table.add_row("closing pace: log sd / months", f"{pace['month_sd']:.2f}",
                          f"{pace['interval'][0]:.2f}–{pace['interval'][1]:.2f} / {len(pace['months'])}")
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


def _percent(value: float | None) -> str:
    """A rate for the table; a dash when there was nothing to estimate it from."""
    return "–" if value is None else f"{value:.1%}"


def _days(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


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
    check_run_size_or_exit(model, scenario)
    with edge_errors(), output_folder(out, "generate-crm") as files:
        export, reps = generate_export(model, seed)
        files.csv("crm_export.csv", export)
        files.csv("roster.csv", reps)
        files.commit()
    console.print(f"wrote {len(export):,} leads to {out / 'crm_export.csv'} and {len(reps)} reps to {out / 'roster.csv'} "
                  "(read it with --mapping generated)", highlight=False)
