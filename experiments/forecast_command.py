"""The ``forecast`` and ``backtest`` commands: an export in, forecasts, accuracy tables and plots out."""

from __future__ import annotations

import base64
import html
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from calibration import CalibrationError, load_mapping, read_export  # noqa: E402
from experiments.console import edge_errors, fail  # noqa: E402
from experiments.forecast import Backtest, Forecast, cut_dates, fit_cut, run_backtest, run_forecast  # noqa: E402
from experiments.output import RunFiles, output_folder  # noqa: E402
from scenarios import ScenarioError  # noqa: E402

console = Console()
ExportArg = Annotated[Path, typer.Argument(help="the CRM export (CSV)")]
MappingOpt = Annotated[str, typer.Option("--mapping", "-m", help="a mapping file, or the name of a shipped one")]
DateOpt = Annotated[Optional[datetime], typer.Option(formats=["%Y-%m-%d"])]
METHOD_LABELS = {"simulation": "simulation", "moving_average": "3-month average", "last_year": "last year",
                 "weighted_pipeline": "weighted pipeline"}


def forecast(
    export: ExportArg,
    mapping: MappingOpt,
    as_of: Annotated[Optional[datetime], typer.Option("--as-of", formats=["%Y-%m-%d"], help="what is known at the end of this day; default: the latest date in the data")] = None,
    months: Annotated[int, typer.Option(min=1, max=60, help="months forecast, from the month after --as-of")] = 6,
    replications: Annotated[int, typer.Option("--replications", "-n", min=1)] = 200,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    since: DateOpt = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/forecast"),
) -> None:
    """Forecast won deals and bookings by month and segment (P10/P50/P90) from the open pipeline and the leads still
    to arrive; write forecast.csv, deals.csv (each open deal's chance to win this month, quarter and next quarter),
    pipeline.csv and forecast.png."""
    with edge_errors(), output_folder(out, "forecast") as files:
        try:
            source, model = load_mapping(mapping)
            raw = read_export(export, model, source)
            cut = fit_cut(raw, model, as_of.date() if as_of else None, since.date() if since else None, seed)
            result = run_forecast(cut, months, files.stage("pipeline.csv"), replications, seed, workers)
        except (CalibrationError, ScenarioError) as error:
            fail(f"{error.source}: {problem}" for problem in error.problems)
        files.csv("forecast.csv", result.monthly)
        files.csv("deals.csv", result.deals, people=True)
        _save(_forecast_figure(result), files, "forecast.png")
        files.commit()
    table = Table(title=f"forecast from {result.start} ({replications} replications), all segments")
    for column in ("month", "won P10", "P50", "P90", "bookings P50"):
        table.add_column(column, justify="left" if column == "month" else "right")
    for row in result.monthly[result.monthly["segment"].eq("all")].itertuples():
        table.add_row(row.month, f"{row.won_p10:,.0f}", f"{row.won_p50:,.0f}", f"{row.won_p90:,.0f}", f"{row.bookings_p50:,.0f}")
    console.print(table)
    pace = cut.calibration.closing_pace()
    spread = (f" and a closing pace drawn per month (log sd {pace['month_sd']:.2f}, {pace['interval'][0]:.2f}–{pace['interval'][1]:.2f}, "
              f"measured over {len(pace['months'])} months)" if pace.get("month_sd") is not None else "")
    console.print(f"P10–P90 holds chance, the fit's uncertainty{spread}", highlight=False)
    console.print(f"open deals {int(cut.pipeline['kind'].eq('opportunity').sum()):,}, waiting leads "
                  f"{int(cut.pipeline['kind'].eq('lead').sum()):,} as of {cut.as_of}; wrote {out / 'forecast.csv'}, "
                  f"{out / 'deals.csv'}, {out / 'pipeline.csv'}, {out / 'forecast.png'}", highlight=False)


def backtest(
    export: ExportArg,
    mapping: MappingOpt,
    cut: Annotated[list[datetime], typer.Option(formats=["%Y-%m-%d"], help="a cut: fit on what was known before this date (repeatable)")] = [],  # noqa: B006
    cuts: Annotated[Optional[str], typer.Option(help="cuts every STEP months from FIRST to LAST: FIRST:LAST:STEP")] = None,
    horizon: Annotated[int, typer.Option(min=1, max=36, help="months compared after each cut")] = 6,
    since: DateOpt = None,
    replications: Annotated[int, typer.Option("--replications", "-n", min=1)] = 20,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/backtest"),
) -> None:
    """Rolling-origin back-test: forecast from each cut with what was known then, and score every horizon month
    (MAPE, bias, P10–P90 coverage, pinball loss) against what happened, beside a 3-month moving average, last
    year's same month and the weighted pipeline."""
    with edge_errors(), output_folder(out, "backtest") as files:
        try:
            dates = [c.date() for c in cut] + (cut_dates(cuts) if cuts else [])
            if not dates:
                raise CalibrationError("--cut", ["give at least one --cut DATE or --cuts FIRST:LAST:STEP"])
            source, model = load_mapping(mapping)
            raw = read_export(export, model, source)
            result = run_backtest(raw, model, dates, horizon, replications, seed, workers, since.date() if since else None)
        except (CalibrationError, ScenarioError) as error:
            fail(f"{error.source}: {problem}" for problem in error.problems)
        files.csv("backtest_monthly.csv", result.monthly)
        files.json("backtest.json", result.metrics)
        files.json("calibrations.json", result.calibrations)
        plot = _save(_backtest_figure(result), files, "backtest.png")
        files.write("backtest.html", _backtest_html(result, plot))
        files.commit()
    console.print(_accuracy_table(result))
    console.print(f"wrote {out / 'backtest_monthly.csv'}, {out / 'backtest.json'}, {out / 'backtest.html'}", highlight=False)


def _accuracy_table(result: Backtest) -> Table:
    cuts = result.monthly["cut"].unique()
    table = Table(title=f"back-test over {len(cuts)} cut(s), all horizons")
    for column in ("measure", "method", "MAPE", "bias", "P10–P90", "pinball", "n"):
        table.add_column(column, justify="left" if column in ("measure", "method") else "right")
    for method, by_measure in result.metrics.items():
        for measure, by_horizon in by_measure.items():
            m = by_horizon["all"]
            table.add_row(measure, METHOD_LABELS[method], _pct(m["mape"]), _pct(m["bias"], sign=True),
                          _pct(m.get("inside_p10_p90")), f"{m['pinball']:,.1f}", str(m["n"]))
    return table


def _pct(value: float | None, sign: bool = False) -> str:
    return "–" if value is None else (f"{value:+.1%}" if sign else f"{value:.1%}")


def _forecast_figure(result: Forecast) -> plt.Figure:
    bands = result.monthly[result.monthly["segment"].eq("all")]
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, measure, title in ((axes[0], "won", "Won deals"), (axes[1], "bookings", "Bookings")):
        x = range(len(bands))
        ax.fill_between(x, bands[f"{measure}_p10"], bands[f"{measure}_p90"], color="#2563eb", alpha=0.18, label="P10–P90")
        ax.plot(x, bands[f"{measure}_p50"], color="#2563eb", label="P50")
        ax.set_title(f"{title} by month, from {result.start}", loc="left", fontsize=11, fontweight="bold")
        ax.set_xticks(list(x), bands["month"], rotation=45, ha="right")
        ax.set_ylim(bottom=0)
        if measure == "bookings":
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1e6:,.1f}M"))
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(frameon=False, fontsize=8)
    return figure


def _backtest_figure(result: Backtest) -> plt.Figure:
    """One panel per cut: actual won deals against the forecast's band and the naive forecasts."""
    won = result.monthly[result.monthly["measure"].eq("won")]
    cuts = list(won["cut"].unique())
    columns = min(3, len(cuts))
    rows = -(-len(cuts) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, cut in zip(axes.flat, cuts):
        part = won[won["cut"].eq(cut)]
        x = range(len(part))
        ax.fill_between(x, part["p10"], part["p90"], color="#2563eb", alpha=0.18, label="simulation P10–P90")
        ax.plot(x, part["mean"], color="#2563eb", label="simulation mean")
        ax.plot(x, part["weighted_pipeline"], color="#d97706", linestyle="--", label="weighted pipeline")
        ax.plot(x, part["moving_average"], color="#6b7280", linestyle=":", label="3-month average")
        ax.plot(x, part["actual"], color="#111827", marker="o", label="actual")
        # a naive forecast far off the mark would flatten the rest: the axis follows the actual and the band
        ax.set_ylim(0, 1.5 * max(part["actual"].max(), part["p90"].max(), 1.0))
        ax.set_title(f"won deals, cut {cut}", loc="left", fontsize=10, fontweight="bold")
        ax.set_xticks(list(x), part["month"], rotation=45, ha="right", fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(cuts):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, fontsize=7)
    figure.tight_layout()
    return figure


def _save(figure: plt.Figure, files: RunFiles, name: str) -> Path:
    """Stage a figure as a PNG; the staged file's path (readable until the set is committed)."""
    path = files.stage(name)
    figure.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _backtest_html(result: Backtest, plot: Path) -> str:
    """The accuracy table per method, measure and horizon month, and the plot, in one self-contained page."""
    rows = []
    for method, by_measure in result.metrics.items():
        for measure, by_horizon in by_measure.items():
            for horizon, m in by_horizon.items():
                rows.append(f"<tr><td>{measure}</td><td>{METHOD_LABELS[method]}</td><td>{horizon}</td><td>{_pct(m['mape'])}</td>"
                            f"<td>{_pct(m['bias'], sign=True)}</td><td>{_pct(m.get('inside_p10_p90'))}</td>"
                            f"<td>{m['pinball']:,.2f}</td><td>{m['n']}</td></tr>")
    image = base64.b64encode(plot.read_bytes()).decode()
    cuts = ", ".join(html.escape(c) for c in result.monthly["cut"].unique())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Forecast back-test</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#111827}}img{{max-width:100%}}table{{border-collapse:collapse}}
td,th{{padding:.25rem .6rem;border-bottom:1px solid #e5e7eb;text-align:right}}td:nth-child(-n+2),th:nth-child(-n+2){{text-align:left}}</style>
</head><body><h1>Forecast back-test</h1><p>Cuts: {cuts}. Each forecast was fitted only on what was known before its cut;
horizon 1 is the month that begins at the cut. Each panel's axis follows the actual figures and the band; a naive
forecast far above them runs off the top.</p><img alt="actual against forecast per cut" src="data:image/png;base64,{image}">
<h2>Accuracy by horizon month</h2><table><tr><th>measure</th><th>method</th><th>horizon</th><th>MAPE</th><th>bias</th>
<th>inside P10–P90</th><th>pinball loss</th><th>months</th></tr>{''.join(rows)}</table></body></html>
"""

