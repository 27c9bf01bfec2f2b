"""Plotly figures and KPI cards for the pages: interactive (hover gives the values), drawn from the same tables
the command line writes (``bands.csv``, ``summary.json``), so a chart in the page and a file on disk agree."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.io as pio
from dash import html

from experiments.output import band_column
from experiments.report import CARDS

#: The plotly_white template as a plain dict, read once.
TEMPLATE = pio.templates["plotly_white"].to_plotly_json()
COLORS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#dc2626", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#0d9488")

#: Monthly columns drawn as fan charts: (column or prefix for per-role columns, title, hover format).
FANS = (
    ("bookings", "Bookings by month", ",.0f"),
    ("won", "Deals won by month", ",.1f"),
    ("response_hours_mean", "Lead response time (hours)", ",.1f"),
    ("headcount_", "Headcount at month end", ",.1f"),
    ("utilization_", "Utilisation", ".1%"),
    ("cost", "Cost by month", ",.0f"),
)


def base_layout(title: str, tickformat: str | None = None) -> dict[str, Any]:
    """The common look of every chart: title, margins, hover across traces, legend beneath."""
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 15}}, "margin": {"l": 60, "r": 16, "t": 44, "b": 40}, "height": 300,
        "hovermode": "x unified", "template": TEMPLATE, "legend": {"orientation": "h", "y": -0.18, "font": {"size": 11}},
    }
    if tickformat:
        layout["yaxis"] = {"tickformat": tickformat}
    return layout


def fan_traces(bands: pd.DataFrame, column: str, color: str, label: str, hover: str) -> list[dict[str, Any]]:
    """The P10–P90 band and the mean of one monthly column, as plain trace dicts (no figure validation: fast)."""
    months = bands["month"].astype(str).tolist()
    p10, p90, mean = (bands[band_column(bands, column, s)].tolist() for s in ("p10", "p90", "mean"))
    return [
        {"type": "scatter", "x": months, "y": p90, "mode": "lines", "line": {"width": 0}, "name": f"{label} P90", "showlegend": False,
         "hovertemplate": f"P90 %{{y:{hover}}}<extra>{label}</extra>"},
        {"type": "scatter", "x": months, "y": p10, "mode": "lines", "line": {"width": 0}, "fill": "tonexty", "fillcolor": _alpha(color, 0.18),
         "name": f"{label} P10–P90", "hovertemplate": f"P10 %{{y:{hover}}}<extra>{label}</extra>"},
        {"type": "scatter", "x": months, "y": mean, "mode": "lines+markers", "line": {"color": color, "width": 2}, "marker": {"size": 4},
         "name": f"{label} mean", "hovertemplate": f"mean %{{y:{hover}}}<extra>{label}</extra>"},
    ]


def fan_charts(runs: list[tuple[str, pd.DataFrame]]) -> list[tuple[str, dict[str, Any]]]:
    """The fan charts of one run, or several overlaid (each its colour): (key, figure) per chart."""
    charts = []
    for column, title, hover in FANS:
        traces: list[dict[str, Any]] = []
        for number, (label, bands) in enumerate(runs):
            columns = _columns(bands, column)
            for k, name in enumerate(columns):
                role = name.removeprefix(column) if column.endswith("_") else ""
                color = COLORS[(number * len(columns) + k) % len(COLORS)]
                traces += fan_traces(bands, name, color, " ".join(p for p in (label if len(runs) > 1 else "", role) if p) or title.split(" (")[0], hover)
        if traces:
            charts.append((column.rstrip("_"), {"data": traces, "layout": base_layout(title, ".0%" if hover.endswith("%") else None)}))
    return charts


def _columns(bands: pd.DataFrame, column: str) -> list[str]:
    """``column`` itself, or every per-role column with that prefix holding a number."""
    if not column.endswith("_"):
        return [column] if f"{column}_mean" in bands else []
    names = sorted({c.removesuffix("_mean") for c in bands.columns if c.startswith(column) and c.endswith("_mean")})
    return [n for n in names if bands[f"{n}_mean"].notna().any()]


def kpi_cards(kpis: dict[str, dict[str, float]]) -> html.Div:
    """Headline cards: mean, and P10–P90 beneath it, as in the HTML report."""
    cards = []
    for key, label, fmt in CARDS:
        stats = kpis.get(key)
        if not stats:
            continue
        known = lambda v: v is not None and not (isinstance(v, float) and math.isnan(v))  # noqa: E731
        value = fmt(stats["mean"]) if known(stats.get("mean")) else "–"
        band = f"P10–P90: {fmt(stats['p10'])} – {fmt(stats['p90'])}" if known(stats.get("p10")) and known(stats.get("p90")) else ""
        cards.append(html.Div([html.Div(label, className="label"), html.Div(value, className="value"), html.Div(band, className="band")],
                              className="card", id=f"card-{key}"))
    return html.Div(cards, className="cards")


def _alpha(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"
