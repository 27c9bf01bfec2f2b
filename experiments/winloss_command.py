"""``salesops winloss``: what drives won deals, and how each rep and territory is really doing.

Reads the export through its mapping, audits it, runs the win/loss analysis and the performance comparison
(``calibration.winloss``, ``calibration.performance``), and writes drivers.csv, performance.csv, winloss.json and
report.html (with its plots), each atomically; tracked in MLflow on request.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from calibration import CalibrationError, audit, load_mapping, read_export
from calibration.attributes import attribute_cells, attribute_column, named_attribute
from calibration.performance import deal_table, performance
from calibration.winloss import analyse_export, cycle_days
from experiments.calibration_commands import _fail
from experiments.console import edge_errors, tracking_failed
from experiments.output import RunFiles, output_folder
from experiments.tracking import OUT_KEY_TAG, OUT_TAG, NullTracker, RunRecord, make_tracker, out_key
from scenarios.json_values import json_ready

console = Console()


def winloss(
    export: Annotated[Path, typer.Argument(help="the CRM export (CSV)")],
    mapping: Annotated[str, typer.Option("--mapping", "-m", help="a mapping file, or the name of a shipped one")],
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="default: the latest date in the data")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/winloss"),
    period: Annotated[str, typer.Option(help="performance periods: month or quarter")] = "quarter",
    territory_by: Annotated[Optional[str], typer.Option("--territory-by", help="an attribute read as the territory (e.g. office)")] = None,
    min_level: Annotated[int, typer.Option(min=1, help="closed deals below which a level is pooled into 'other'")] = 30,
    track: Annotated[bool, typer.Option("--track", help="log to MLflow (default store: sqlite:///mlflow.db here)")] = False,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI; implies --track")] = None,
) -> None:
    """Win/loss drivers (odds ratios, leakage warnings, held-out check) and rep and territory performance."""
    if period not in ("month", "quarter"):
        raise _fail("--period", [f"{period!r}: expected month or quarter"])
    with edge_errors():
        tracker = make_tracker(track, tracking_uri)  # a bad store is refused before the work
    try:
        source, model = load_mapping(mapping)
        raw = read_export(export, model, source)
        checked = audit(raw, model, as_of=as_of)
        result = analyse_export(raw, checked, export, source, min_level)
        territory = None
        if territory_by is not None:
            spec = named_attribute(model, territory_by, "--territory-by")
            cells = attribute_cells(raw, model, export, source, {territory_by: spec}).drop(index=checked.quarantine.index)
            territory = attribute_column(territory_by, spec, cells[territory_by]).levels
    except CalibrationError as error:
        raise _fail(error.source, error.problems) from None
    used = checked.used
    units = {kind: kind for kind in ("owner", "territory")
             if getattr(model.columns, kind) is not None or (kind == "territory" and territory is not None)}
    table, trend = performance(deal_table(used, cycle_days(used), territory), units, period)
    summary = _summary(checked, result, table, trend, units, territory_by, period)
    with edge_errors(), output_folder(out, "winloss") as files:
        paths = _write(files, result, table, summary)
    try:
        track_winloss(tracker, export, mapping, summary, list(paths.values()), out)
    except Exception as error:  # noqa: BLE001 - any store failure after the work: one line, the files stay
        tracking_failed(error, out)
    _print(summary, result)
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}", highlight=False)


def _summary(checked, result, table, trend, units: dict, territory_by: str | None, period: str) -> dict:
    """winloss.json: data and audit, attributes, the model, the held-out check, drivers, leakage, units, trends."""
    closed = checked.used["outcome"].isin(("won", "lost"))
    won = checked.used["outcome"].eq("won")
    drivers = result.drivers()
    leakage = [info for info in result.attributes if info["status"] == "leakage"]
    whole = table[table["period"] == "all"]
    return json_ready({
        "audit": checked.to_dict(),
        "closed": int(closed.sum()), "won": int(won.sum()), "open": int((~closed).sum()),
        "won_rate": float(won.sum() / closed.sum()),
        "attributes": result.attributes,
        "model": result.model,
        "holdout": result.holdout,
        "top_drivers": drivers[["attribute", "level", "won_rate", "odds_ratio", "or_low", "or_high", "p_adjusted"]].to_dict(orient="records"),
        "leakage": [{"attribute": info["attribute"], "reason": info["reason"]} for info in leakage],
        "performance": {"units": list(units), "territory_by": territory_by, "period": period,
                        "prior_strength": {kind: float(whole[whole["kind"] == kind]["prior_strength"].iloc[0])
                                           for kind in units if (whole["kind"] == kind).any()},
                        "flagged": whole[whole["flag"].isin(("below", "above"))][["kind", "unit", "deals", "won_rate", "org_rate", "shrunk_rate", "flag"]].to_dict(orient="records")},
        "trends": trend.to_dict(orient="records"),
        "lost_reasons": None if result.lost_reasons is None else result.lost_reasons.to_dict(orient="records"),
        "notes": checked.summary["notes"] + result.notes,
    })


def _write(files: RunFiles, result, table, summary: dict) -> dict[str, Path]:
    """drivers.csv, performance.csv, lost_reasons.csv (if any), report.html with its plots and winloss.json, published
    as one set (no file of an earlier run survives)."""
    from experiments.winloss_report import winloss_report  # matplotlib loads only when writing the report

    files.csv("drivers.csv", result.levels, people=True)
    files.csv("performance.csv", table, people=True)
    if result.lost_reasons is not None:
        files.csv("lost_reasons.csv", result.lost_reasons, people=True)
    page, images = winloss_report(summary, result.levels, table, result.lost_reasons)
    files.write("report.html", page)
    for name, png in images.items():
        files.write(f"plots/{name}.png", png)
    files.json("winloss.json", summary)
    return {str(path.relative_to(files.folder)): path for path in files.commit()}


def p_text(p: float) -> str:
    """A p-value for people: below what a double can tell from zero, ``<1e-300``."""
    return "<1e-300" if p < 1e-300 else f"{p:.1e}"


def track_winloss(tracker: NullTracker, export: Path, mapping: str, summary: dict, files: list[Path], out: Path) -> str | None:
    """Log the analysis to MLflow when asked: data hash, headline figures and the files; its run id."""
    if not tracker.active:
        return None
    holdout, model = summary["holdout"], summary["model"]
    metrics = {"closed": summary["closed"], "won_rate": summary["won_rate"], "leakage_attributes": len(summary["leakage"]),
               "significant_attributes": sum(bool(a.get("significant")) for a in summary["attributes"]),
               "flagged_units": len(summary["performance"]["flagged"])}
    if holdout.get("done"):
        metrics |= {"holdout_auc": holdout["auc"], "holdout_max_decile_gap": holdout["max_decile_gap"]}
    if model.get("fitted"):
        metrics["pseudo_r2"] = model["pseudo_r2"]
    params = {"export": str(export), "mapping": mapping, "sha256": summary["audit"]["data"]["sha256"],
              "as_of": str(summary["audit"]["data"]["as_of"]), "period": summary["performance"]["period"]}
    record = RunRecord(f"winloss {export.name}", params, metrics, {}, files,
                       {OUT_TAG: str(out.resolve()), OUT_KEY_TAG: out_key(out), "salesops.kind": "winloss"})
    return tracker.log_run(record)


def _print(summary: dict, result) -> None:
    table = Table(title=f"win/loss: {summary['closed']:,} closed deals, won {summary['won_rate']:.1%}",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("driver", "won rate", "odds ratio (95%)", "adj. p"):
        table.add_column(column, justify="left" if column == "driver" else "right", overflow="fold")
    for row in summary["top_drivers"]:
        table.add_row(f"{row['attribute']} = {row['level']}", f"{row['won_rate']:.1%}",
                      f"{row['odds_ratio']:.2f} ({row['or_low']:.2f}–{row['or_high']:.2f})", p_text(row["p_adjusted"]))
    if summary["top_drivers"]:
        console.print(table)
    else:
        console.print(f"win/loss: {summary['closed']:,} closed deals, won {summary['won_rate']:.1%}; no attribute known while "
                      "the deal is open moves the won rate beyond noise (adjusted p < 0.05)", highlight=False)
    for item in summary["leakage"]:
        console.print(f"leakage: {item['attribute']}: {item['reason']}", highlight=False)
    holdout = summary["holdout"]
    if holdout.get("done"):
        console.print(f"held-out {holdout['test']:,} latest deals: AUC {holdout['auc']:.3f}, predicted {holdout['predicted_rate']:.1%} "
                      f"vs observed {holdout['observed_rate']:.1%}, largest decile gap {holdout['max_decile_gap']:.1%}", highlight=False)
    else:
        console.print(f"held-out check skipped: {holdout['reason']}", highlight=False)
    for row in summary["performance"]["flagged"]:
        console.print(f"{row['kind']} {row['unit']}: {row['flag']} the funnel limits ({row['won_rate']:.1%} on {row['deals']:,} "
                      f"deals, organisation {row['org_rate']:.1%}, shrunk {row['shrunk_rate']:.1%})", highlight=False)
    for row in summary["trends"]:
        if row["trend"] != "steady":
            console.print(f"{row['kind']} {row['unit']} {row['trend']} in {row['period']}: {row['won_rate']:.1%} "
                          f"against {row['earlier_won_rate']:.1%} before (adjusted p {row['p_adjusted']:.2g})", highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)

