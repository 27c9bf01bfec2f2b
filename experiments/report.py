"""A self-contained HTML report of a ``simulate`` folder: headline cards and fan charts, plots embedded as PNG.

Reads ``summary.json``, ``bands.csv``, ``monthly.csv`` and ``scenario.yaml`` of a folder whose completeness
marker vouches for them (an interrupted or mixed folder is refused); writes ``report.html`` and the plots as
``plots/*.png`` (the same images, for tracking), added to the folder's set. Matplotlib runs headless (Agg).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402

from experiments.output import OutputError, band_column, check_complete, output_folder, read_marker, write_atomically  # noqa: E402
from scenarios.loading import safe_yaml  # noqa: E402

NEEDED = ("summary.json", "bands.csv", "monthly.csv")
COLORS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626", "#0891b2")
FUNNEL = (("leads", "Leads"), ("mql", "MQL"), ("sql", "SQL"), ("opportunities", "Opportunities"), ("won", "Won"))


class ReportError(ValueError):
    """A folder that is not a ``simulate`` output; the message names the missing file."""


@dataclass(frozen=True)
class RunFolder:
    """What the report reads from a ``simulate`` folder."""

    folder: Path
    summary: dict
    bands: pd.DataFrame
    monthly: pd.DataFrame
    scenario: dict
    marker: dict  # the completeness marker of the set read

    @classmethod
    def read(cls, folder: Path) -> "RunFolder":
        if not folder.is_dir():
            raise ReportError(f"{folder}: no such folder (give a folder written by salesops simulate)")
        missing = [name for name in NEEDED if not (folder / name).is_file()]
        if missing:
            raise ReportError(f"{folder}: not a simulate output folder (missing {', '.join(missing)})")
        try:
            marker = check_complete(folder, NEEDED)
        except OutputError as error:
            raise ReportError(str(error)) from None
        try:
            scenario_file = folder / "scenario.yaml"
            scenario = safe_yaml(scenario_file.read_text(encoding="utf-8")) if scenario_file.is_file() else {}
            run = cls(
                folder, json.loads((folder / "summary.json").read_text(encoding="utf-8")),
                pd.read_csv(folder / "bands.csv"), pd.read_csv(folder / "monthly.csv"), scenario or {}, marker,
            )
            if not isinstance(run.summary.get("kpis"), dict) or run.bands.empty or "month" not in run.bands:
                raise ValueError("summary.json or bands.csv lacks what simulate writes")
        except (OSError, ValueError, yaml.YAMLError, AttributeError) as error:
            raise ReportError(f"{folder}: cannot read the simulation's files ({str(error).splitlines()[0][:200]})") from None
        return run

    def roles(self, prefix: str) -> list[str]:
        """Roles with a ``<prefix>_<role>`` monthly column holding any number."""
        return [c.removeprefix(f"{prefix}_") for c in self.monthly.columns if c.startswith(f"{prefix}_") and self.monthly[c].notna().any()]


def write_report(folder: Path, out: Path | None = None) -> tuple[Path, list[Path]]:
    """Write the report (default ``folder/report.html``) and its plots in ``folder/plots``; their paths."""
    run = RunFolder.read(folder)
    figures = {
        "bookings": ("Monthly bookings", _bookings(run)),
        "cumulative_bookings": ("Cumulative bookings", _cumulative(run)),
        "headcount": ("Headcount and ramped headcount", _headcount(run)),
        "response_time": ("Lead response time", _response(run)),
        "utilization": ("Utilisation", _utilization(run)),
        "funnel": ("Funnel over the horizon", _funnel(run)),
    }
    images = {}
    for name, (_, figure) in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        images[name] = buffer.getvalue()
    page = _html(run, {name: (title, images[name]) for name, (title, _) in figures.items()})
    with output_folder(folder, "report", extend=True) as files:
        if (read_marker(folder) or {}).get("files", {}).get("summary.json") != run.marker["files"]["summary.json"]:
            raise ReportError(f"{folder}: the run was written again while its report was made; run report again")
        paths = [files.write(f"plots/{name}.png", png) for name, png in images.items()]
        path = files.write("report.html", page) if out is None else write_atomically(out, page)
        files.commit()
    return path, paths


def _months(run: RunFolder) -> list[str]:
    return run.bands["month"].astype(str).tolist()


def _axes(title: str, ylabel: str = "") -> tuple[Figure, Axes]:
    figure, axes = plt.subplots(figsize=(7.2, 3.6))
    axes.set_title(title, loc="left", fontsize=12, fontweight="bold")
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _month_ticks(axes: Axes, months: list[str]) -> None:
    step = max(1, len(months) // 9)
    axes.set_xticks(range(0, len(months), step), [months[i] for i in range(0, len(months), step)], rotation=45, ha="right")


def _fan(axes: Axes, run: RunFolder, column: str, color: str, label: str) -> None:
    """Mean line with the P10–P90 band of one monthly column."""
    bands, x = run.bands, range(len(run.bands))
    axes.fill_between(x, bands[band_column(bands, column, "p10")], bands[band_column(bands, column, "p90")], color=color, alpha=0.18, label=f"{label} P10–P90")
    axes.plot(x, bands[band_column(bands, column, "mean")], color=color, linewidth=2, label=f"{label} mean")


def _money(value: float, _: object = None) -> str:
    for size, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.1f}{suffix}"
    return f"{value:,.0f}"


def _bookings(run: RunFolder) -> Figure:
    figure, axes = _axes("Monthly bookings: mean and P10–P90 band")
    _fan(axes, run, "bookings", COLORS[0], "bookings")
    axes.plot(range(len(run.bands)), run.bands[band_column(run.bands, "bookings", "p50")], color=COLORS[0], linestyle=":", label="median")
    axes.yaxis.set_major_formatter(FuncFormatter(_money))
    _month_ticks(axes, _months(run))
    axes.legend(frameon=False, fontsize=8)
    return figure


def _cumulative(run: RunFolder) -> Figure:
    figure, axes = _axes("Cumulative bookings: mean and P10–P90 across replications")
    paths = run.monthly.pivot(index="month", columns="replication", values="bookings").sort_index().cumsum()
    x = range(len(paths))
    axes.fill_between(x, paths.quantile(0.1, axis=1), paths.quantile(0.9, axis=1), color=COLORS[0], alpha=0.18, label="P10–P90")
    axes.plot(x, paths.mean(axis=1), color=COLORS[0], linewidth=2, label="mean")
    axes.yaxis.set_major_formatter(FuncFormatter(_money))
    _month_ticks(axes, [str(m) for m in paths.index])
    axes.legend(frameon=False, fontsize=8)
    return figure


def _headcount(run: RunFolder) -> Figure:
    figure, axes = _axes("Headcount (solid) and ramped equivalents (dashed), mean", "reps")
    x = range(len(run.bands))
    for color, role in zip(COLORS, run.roles("headcount")):
        axes.plot(x, run.bands[band_column(run.bands, f"headcount_{role}", "mean")], color=color, linewidth=2, label=role)
        ramped = f"ramped_{role}"
        if ramped in run.monthly:
            axes.plot(x, run.bands[band_column(run.bands, ramped, "mean")], color=color, linewidth=1.5, linestyle="--")
    axes.set_ylim(bottom=0)
    _month_ticks(axes, _months(run))
    axes.legend(frameon=False, fontsize=8, ncol=3, loc="lower right")
    return figure


def _response(run: RunFolder) -> Figure:
    figure, axes = _axes("Lead response time: monthly mean (band: P10–P90) and P90 of leads", "hours")
    _fan(axes, run, "response_hours_mean", COLORS[2], "mean response")
    axes.plot(range(len(run.bands)), run.bands[band_column(run.bands, "response_hours_p90", "mean")], color=COLORS[4], linewidth=1.5, label="P90 response")
    axes.set_ylim(bottom=0)
    _month_ticks(axes, _months(run))
    axes.legend(frameon=False, fontsize=8)
    return figure


def _utilization(run: RunFolder) -> Figure:
    figure, axes = _axes("Utilisation by role: mean and P10–P90 band")
    for color, role in zip(COLORS, run.roles("utilization")):
        _fan(axes, run, f"utilization_{role}", color, role)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_ylim(bottom=0)
    _month_ticks(axes, _months(run))
    axes.legend(frameon=False, fontsize=8, ncol=2)
    return figure


def _funnel(run: RunFolder) -> Figure:
    figure, axes = _axes("Funnel over the horizon: mean per replication")
    kpis = run.summary["kpis"]
    values = [kpis[key]["mean"] or 0.0 for key, _ in FUNNEL]
    labels = [label for _, label in FUNNEL]
    axes.barh(range(len(values)), values, color=[COLORS[i % len(COLORS)] for i in range(len(values))], alpha=0.85)
    axes.set_yticks(range(len(values)), labels)
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3)
    axes.grid(axis="y", visible=False)
    for i, value in enumerate(values):
        step = f"  ({value / values[i - 1]:.0%} of {labels[i - 1]})" if i and values[i - 1] else ""
        axes.text(value, i, f" {value:,.0f}{step}", va="center", fontsize=9)
    axes.set_xlim(0, max(values) * 1.45 if max(values) else 1)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    return figure


CARDS = (
    ("bookings", "Bookings", _money),
    ("won", "Deals won", lambda v: f"{v:,.0f}"),
    ("win_rate", "Win rate", lambda v: f"{v:.1%}"),
    ("cycle_days_mean", "Sales cycle", lambda v: f"{v:.0f} days"),
    ("response_hours_mean", "Response time", lambda v: f"{v:.1f} h"),
    ("cost", "Cost", _money),
)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f7fb;color:#1f2937}
header{background:#111827;color:#f9fafb;padding:24px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;color:#cbd5e1}main{padding:24px 40px;max-width:1500px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:14px;margin-bottom:24px}
.card{background:#fff;border-radius:10px;padding:16px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.card .label{font-size:13px;color:#6b7280;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:28px;font-weight:700;margin:4px 0}.card .band{font-size:13px;color:#6b7280}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:18px}
figure{background:#fff;margin:0;border-radius:10px;padding:12px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
figure img{width:100%;height:auto}footer{padding:10px 40px 30px;color:#6b7280;font-size:13px}
"""


def start_description(scenario: dict) -> str:
    """Where a run started, from its resolved scenario: a snapshot file, a warm-up of so many months, or empty."""
    state = scenario.get("initial_state") or {}
    if state.get("pipeline"):
        return f"Started from the snapshot {Path(state['pipeline']).name}: its open deals, waiting leads and reps."
    months = state.get("warm_up_months")
    if months == 0:
        return "Started from an empty organisation: no open deals, no leads waiting."
    length = "a warm-up of the automatic length" if months is None else f"a {months}-month warm-up"
    return (f"Started in steady state: {length} (the organisation as it stands at the start, simulated before it and "
            "discarded) carried its open deals and waiting leads in.")


def _html(run: RunFolder, images: dict[str, tuple[str, bytes]]) -> str:
    kpis, scenario = run.summary["kpis"], run.scenario
    name = html.escape(str(run.summary.get("scenario", run.folder.name)))
    months = _months(run)
    subtitle = (
        f"{html.escape(str(scenario.get('description', '')))} · {months[0]} to {months[-1]} · "
        f"{run.summary.get('replications')} replications · seed {run.summary.get('seed')}"
    )
    started = html.escape(start_description(scenario))
    cards = []
    for key, label, fmt in CARDS:
        stats = kpis.get(key) or {}
        if stats.get("mean") is None:
            continue
        band = f"P10 {fmt(stats['p10'])} – P90 {fmt(stats['p90'])}" if stats.get("p10") is not None else ""
        cards.append(f'<div class="card"><div class="label">{label}</div><div class="value">{fmt(stats["mean"])}</div><div class="band">{band}</div></div>')
    figures = [
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
        for title, png in images.values()
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{name}: salesops report</title>'
        f"<style>{STYLE}</style></head><body><header><h1>{name}</h1><p>{subtitle}</p><p>{started}</p></header><main>"
        f'<div class="cards">{"".join(cards)}</div><div class="plots">{"".join(figures)}</div></main>'
        f"<footer>Horizon totals are means across replications, with P10 and P90. Written by salesops report from "
        f"{html.escape(str(run.folder))}.</footer></body></html>\n"
    )
