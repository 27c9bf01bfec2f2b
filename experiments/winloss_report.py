"""The win/loss report: a self-contained HTML page with the driver chart, funnel plots, trend charts and the
held-out calibration, plots embedded as PNG (and written to ``plots/`` for tracking), as ``salesops report`` does."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd

from calibration.performance import ALARM, WARNING, funnel_limits
from experiments.report import COLORS, STYLE, _axes  # the simulate report's look; it sets matplotlib headless (Agg)
from experiments.winloss_command import p_text

import matplotlib.pyplot as plt  # noqa: E402  (after experiments.report chose the Agg backend)

#: At most this many units are drawn as their own line in a trend chart (the rest in grey).
TREND_LINES = 8
FLAG_COLORS = {"below": COLORS[4], "above": COLORS[2], "low": COLORS[1], "high": COLORS[5], "within": "#6b7280"}


def winloss_report(summary: dict, levels: pd.DataFrame, performance: pd.DataFrame,
                   lost_reasons: pd.DataFrame | None) -> tuple[str, dict[str, bytes]]:
    """The report page (plots embedded) and its plots as PNG, by name."""
    figures = {"drivers": ("Drivers: odds ratios with 95% intervals", _drivers(levels))}
    if summary["holdout"].get("done"):
        figures["calibration"] = ("Held-out calibration", _calibration(summary["holdout"]))
    whole = performance[performance["period"] == "all"]
    for kind in summary["performance"]["units"]:
        figures[f"funnel_{kind}"] = (f"Funnel plot by {kind}", _funnel(whole[whole["kind"] == kind], kind))
        periods = performance[(performance["kind"] == kind) & (performance["period"] != "all")]
        if periods["period"].nunique() > 1:
            figures[f"trend_{kind}"] = (f"Won rate by {kind} over time", _trend(periods, kind, summary["trends"]))
    if lost_reasons is not None:
        figures["lost_reasons"] = ("Lost reasons", _lost(lost_reasons))
    images = {}
    for name, (title, figure) in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        images[name] = (title, buffer.getvalue())
    return _html(summary, images), {name: png for name, (_, png) in images.items()}


def _drivers(levels: pd.DataFrame):
    rows = levels[~levels["reference"] & levels["odds_ratio"].notna() & levels["status"].isin(("driver", "leakage"))]
    rows = rows.drop_duplicates(["attribute", "model_level"])
    figure, axes = _axes("Odds ratio of winning against each attribute's reference level (log scale)")
    figure.set_size_inches(10, max(2.5, 0.3 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    colors = np.where(rows["leakage"], COLORS[4], np.where(rows["p_adjusted"] < 0.05, COLORS[0], "#9ca3af"))
    axes.hlines(y, rows["or_low"], rows["or_high"], colors=list(colors), linewidth=1.5)
    axes.scatter(rows["odds_ratio"], y, c=list(colors), zorder=3, s=22)
    axes.axvline(1.0, color="#111827", linewidth=1)
    axes.set_xscale("log")
    labels = [f"{a} = {lvl}" + ("  [leakage]" if leak else "") for a, lvl, leak in zip(rows["attribute"], rows["model_level"], rows["leakage"])]
    axes.set_yticks(y, labels, fontsize=9)
    axes.grid(axis="x", alpha=0.3)
    axes.grid(axis="y", visible=False)
    axes.set_xlabel("odds ratio (blue: adjusted p < 0.05; grey: not; red: leakage, one-attribute model)")
    return figure


def _calibration(holdout: dict):
    deciles = pd.DataFrame(holdout["deciles"])
    figure, axes = _axes(f"Held-out {holdout['test']:,} latest deals: AUC {holdout['auc']:.3f}", "observed won rate")
    top = max(deciles["predicted"].max(), deciles["observed"].max()) * 1.05
    axes.plot([0, top], [0, top], color="#9ca3af", linestyle="--", label="perfect calibration")
    axes.plot(deciles["predicted"], deciles["observed"], marker="o", color=COLORS[0], label="deciles of prediction")
    axes.set_xlabel("predicted won rate")
    axes.legend(frameon=False, fontsize=8)
    return figure


def _funnel(units: pd.DataFrame, kind: str):
    rate = float(units["org_rate"].iloc[0])
    figure, axes = _axes(f"Won rate by {kind} against closed deals, with funnel limits", "won rate")
    n = np.linspace(max(1, units["deals"].min() * 0.8), units["deals"].max() * 1.1, 300).round()
    for level, style in ((WARNING, "--"), (ALARM, ":")):
        low, high = funnel_limits(n, rate, level)
        axes.plot(n, low, color="#6b7280", linestyle=style, linewidth=1, label=f"{level:.1%} limits")
        axes.plot(n, high, color="#6b7280", linestyle=style, linewidth=1)
    axes.axhline(rate, color="#111827", linewidth=1, label=f"organisation {rate:.1%}")
    for flag, group in units.groupby("flag"):
        axes.scatter(group["deals"], group["won_rate"], color=FLAG_COLORS[flag], s=24, zorder=3, label=flag)
        if flag != "within":
            for _, row in group.iterrows():
                axes.annotate(str(row["unit"]), (row["deals"], row["won_rate"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xlabel("closed deals")
    axes.legend(frameon=False, fontsize=7, ncol=3)
    return figure


def _trend(periods: pd.DataFrame, kind: str, trends: list[dict]):
    figure, axes = _axes(f"Won rate by {kind} and period (organisation in black)", "won rate")
    order = sorted(periods["period"].unique())
    x = {p: i for i, p in enumerate(order)}
    moved = {row["unit"] for row in trends if row["kind"] == kind and row["trend"] != "steady"}
    sizes = periods.groupby("unit")["deals"].sum().sort_values(ascending=False)
    named = list(dict.fromkeys([*sorted(moved), *sizes.index[:TREND_LINES]]))[:TREND_LINES]
    for i, (unit, group) in enumerate(periods.groupby("unit")):
        group = group.sort_values("period")
        xs = group["period"].map(x)
        if unit in named:
            color = COLORS[named.index(unit) % len(COLORS)]
            axes.plot(xs, group["won_rate"], marker="o", markersize=3, color=color, linewidth=2 if unit in moved else 1.2,
                      label=f"{unit}{' (' + next(r['trend'] for r in trends if r['unit'] == unit and r['kind'] == kind) + ')' if unit in moved else ''}")
        else:
            axes.plot(xs, group["won_rate"], color="#d1d5db", linewidth=0.8)
    org = periods.groupby("period")["org_rate"].first()
    axes.plot([x[p] for p in org.index], org.to_numpy(), color="#111827", linewidth=2.5, label="organisation")
    axes.set_xticks(range(len(order)), order, rotation=45, ha="right")
    axes.legend(frameon=False, fontsize=7, ncol=3)
    return figure


def _lost(reasons: pd.DataFrame):
    shares = reasons[reasons["by"] == "quarter"].pivot(index="group", columns="reason", values="share").fillna(0.0)
    figure, axes = _axes("Lost reasons: share of lost deals by quarter of the close")
    bottom = np.zeros(len(shares))
    for i, reason in enumerate(shares.columns):
        axes.bar(range(len(shares)), shares[reason], bottom=bottom, color=COLORS[i % len(COLORS)], label=str(reason))
        bottom += shares[reason].to_numpy()
    axes.set_xticks(range(len(shares)), shares.index, rotation=45, ha="right")
    axes.legend(frameon=False, fontsize=8, ncol=3)
    return figure


def _rows(items: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in items)


def _table(title: str, head: list[str], items: list[list[str]]) -> str:
    if not items:
        return ""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<section><h2>{html.escape(title)}</h2><table><tr>{header}</tr>{_rows(items)}</table></section>"


TABLE_STYLE = """
section{background:#fff;border-radius:10px;padding:12px 18px;margin-bottom:18px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
section h2{font-size:16px;margin:6px 0 10px}table{border-collapse:collapse;font-size:13px;width:100%}
td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb}th{color:#6b7280;font-weight:600}
figure.wide{grid-column:1/-1}figure.wide img{max-width:1100px}
"""
#: Plots drawn across the page.
WIDE = ("drivers",)


def _html(summary: dict, images: dict[str, tuple[str, bytes]]) -> str:
    data = summary["audit"]["data"]
    files = ", ".join(data["files"])
    holdout = summary["holdout"]
    cards = [("Closed deals", f"{summary['closed']:,}", f"{summary['open']:,} open"),
             ("Won rate", f"{summary['won_rate']:.1%}", f"{summary['won']:,} won"),
             ("Held-out AUC", f"{holdout['auc']:.3f}" if holdout.get("done") else "–",
              f"{holdout['test']:,} latest deals" if holdout.get("done") else holdout.get("reason", "")),
             ("Leakage", str(len(summary["leakage"])), "attributes known only at the close")]
    card_html = "".join(f'<div class="card"><div class="label">{html.escape(label)}</div><div class="value">{html.escape(value)}</div>'
                        f'<div class="band">{html.escape(band)}</div></div>' for label, value, band in cards)
    drivers = [[f"{r['attribute']} = {r['level']}", f"{r['won_rate']:.1%}", f"{r['odds_ratio']:.2f} ({r['or_low']:.2f}–{r['or_high']:.2f})",
                p_text(r["p_adjusted"])] for r in summary["top_drivers"]]
    leakage = [[item["attribute"], item["reason"]] for item in summary["leakage"]]
    flagged = [[r["kind"], r["unit"], f"{r['deals']:,}", f"{r['won_rate']:.1%}", f"{r['shrunk_rate']:.1%}", f"{r['org_rate']:.1%}", r["flag"]]
               for r in summary["performance"]["flagged"]]
    trends = [[r["kind"], r["unit"], r["period"], f"{r['won_rate']:.1%} on {r['deals']:,}", f"{r['earlier_won_rate']:.1%}", f"{r['p_adjusted']:.2g}", r["trend"]]
              for r in summary["trends"] if r["trend"] != "steady"]
    sections = (_table("Top drivers known while the deal is open", ["level", "won rate", "odds ratio (95%)", "adjusted p"], drivers)
                + _table("Leakage: known only at the close, reported apart", ["attribute", "why"], leakage)
                + _table("Units outside the 99.8% funnel limits (whole window)", ["kind", "unit", "closed deals", "won rate", "shrunk", "organisation", "flag"], flagged)
                + _table("Trends beyond noise (last period against earlier ones)", ["kind", "unit", "period", "now", "before", "adjusted p", "trend"], trends)
                + _table("Notes", ["note"], [[note] for note in summary["notes"]]))
    figures = "".join(f'<figure{" class=wide" if name in WIDE else ""}><img alt="{html.escape(title)}" '
                      f'src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'
                      for name, (title, png) in images.items())
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Win/loss: {html.escape(files)}</title>'
            f"<style>{STYLE}{TABLE_STYLE}</style></head><body><header><h1>Win/loss and performance</h1>"
            f"<p>{html.escape(files)} · as of {html.escape(str(data['as_of'] or '(undated)'))} · sha256 {data['sha256'][:12]}</p></header>"
            f'<main><div class="cards">{card_html}</div>{sections}<div class="plots">{figures}</div></main>'
            "<footer>Won rates among closed deals with Wilson 95% intervals; odds ratios from one logistic regression "
            "(statsmodels), p adjusted by Benjamini–Hochberg; shrunk rates from an empirical-Bayes beta-binomial; funnel "
            "limits at 95% and 99.8%. Written by salesops winloss.</footer></body></html>\n")
