"""Forecasts from a CRM export, and how good they are.

A forecast fits the export as it was known on the as-of date (``calibration``), takes the pipeline open then (the
snapshot: open deals with the days spent in their stage, leads waiting), and simulates the months after it: the
open deals run off given the age they have survived, and new leads arrive as fitted. It starts on the first day of
the month after the as-of date (deals closing in the days between count in the first month). The organisation is
given ample capacity: history does not say how long reps took per lead, so their queues cannot be rebuilt; the
funnel therefore takes the *observed* SQL rates, with no response decay, and the fitted durations already hold the
waits history saw.

A back-test repeats this at several cuts, each fitted only on what was known before it, and scores each horizon
month against what happened, beside three naive forecasts made on the same cuts: a 3-month moving average, last
year's same month, and the weighted pipeline (each open deal's amount × its stage's historical win rate, closing at
its stage's median time to close): the method most CRMs ship.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from calibration import Audit, Calibration, CalibrationError, Mapping, RawExport, apply_calibration, audit
from calibration.calibrate import STAGE_NAME
from engine import LeadState, lead_outcomes
from engine.calendar import month_starts
from engine.leads import Origin
from experiments.runner import map_replications
from scenarios import Scenario, validate_scenario
from scenarios.snapshot import COLUMNS as SNAPSHOT_COLUMNS, DISCOVERY

#: Enough first-touch capacity that no lead waits for a rep, and no limit on open opportunities.
UNCONSTRAINED_ROLES = {
    "sdr": {"works": "leads", "headcount": {"all": 1},
            "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": 0, "end": 24},
            "handling_hours": {"dist": "fixed", "value": 0.0}},
    "ae": {"works": "opportunities", "headcount": {"all": 1}, "open_opportunity_limit": 10_000_000},
}
MEASURES = ("won", "bookings")
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
NAIVE_METHODS = ("moving_average", "last_year", "weighted_pipeline")


@dataclass(frozen=True)
class Cut:
    """An export as known on ``as_of``: its audit, the calibration fitted on it and the pipeline open then."""

    as_of: date
    checked: Audit
    calibration: Calibration
    pipeline: pd.DataFrame

    @property
    def start(self) -> pd.Period:
        """The first forecast month: the month after the as-of date."""
        return pd.Period(self.as_of, "M") + 1


def fit_cut(raw: RawExport, mapping: Mapping, as_of: date | None, since: date | None = None, seed: int = 0) -> Cut:
    """Audit and fit the export as known at the end of ``as_of`` (default: the latest date in the data), and take
    its open pipeline."""
    if mapping.undated:
        raise CalibrationError("mapping", ["undated: true, yet a forecast needs dates"])
    try:
        checked = audit(raw, mapping, as_of=as_of, since=since)
        fitted = Calibration(seed=seed).fit(checked)
    except CalibrationError:
        first = audit(raw, mapping, since=since).used["created_at"].min() if as_of else pd.NaT
        if pd.notna(first) and pd.Timestamp(as_of) < first.normalize():
            raise CalibrationError("--as-of", [f"{as_of} is before the first date in the data ({first.date()})"]) from None
        raise
    return Cut(checked.as_of.date(), checked, fitted, fitted.snapshot(checked.used))


def forecast_scenario(cut: Cut, pipeline_file: Path, months: int, seed: int) -> Scenario:
    """The calibrated funnel (observed SQL rates, no response decay) on an unconstrained organisation, starting from
    the cut's open deals and waiting leads (``pipeline_file``, written here without territories, owners or reps,
    which the unconstrained organisation does not have), arrivals levelled at the first forecast month; each
    replication runs on one of the fit's parameter draws, so the bands hold estimation error as well as chance."""
    pipeline = pd.concat([cut.pipeline[cut.pipeline["kind"].eq(kind)] for kind in ("opportunity", "lead")])  # deals first
    pipeline[["territory", "owner", "role", "tenure_months"]] = np.nan
    age_offset = (cut.start.start_time - pd.Timestamp(cut.as_of) - pd.Timedelta(days=1)) / pd.Timedelta(days=1)
    pipeline["age_days"] = pipeline["age_days"].astype(float) + age_offset
    pipeline.reindex(columns=SNAPSHOT_COLUMNS).to_csv(pipeline_file, index=False)
    fragment = cut.calibration.scenario_fragment(with_response_decay=False)
    fragment.pop("initial_state", None)
    for name, source in fragment.get("lead_sources", {}).items():
        source["monthly_volume"] = cut.calibration.arrivals_[name]["model"].monthly_volume(cut.start)[0]
    base = {
        "name": f"forecast from {cut.as_of}", "start": cut.start.start_time.date(), "horizon_months": months,
        "seed": seed, "territories": {"all": {}}, "roles": UNCONSTRAINED_ROLES,
        "initial_state": {"pipeline": str(pipeline_file)},
        "parameter_draws": cut.calibration.parameter_draws(),  # the bands hold the fit's uncertainty too
    }
    return validate_scenario(apply_calibration(base, {"scenario": fragment}), "forecast scenario")


@dataclass(frozen=True)
class Forecast:
    """``by_replication``: won deals and bookings per replication, month and segment; ``monthly``: per month and
    segment (and ``all``), the mean and P10/P50/P90 of each; ``deals``: per open deal of the pipeline, the
    probability of winning by the end of the first month, its quarter and the next quarter, and its expected close."""

    start: pd.Period
    months: list[str]
    by_replication: pd.DataFrame
    monthly: pd.DataFrame
    deals: pd.DataFrame


def run_forecast(cut: Cut, months: int, pipeline_file: Path, replications: int = 200, seed: int = 0, workers: int = 1,
                 arrivals_until: pd.Timestamp | None = None) -> Forecast:
    """Simulate ``months`` months from the cut, its pipeline written to ``pipeline_file``; ``arrivals_until`` leaves
    out deals of leads arriving after it (a back-test compares with an export that holds no lead created after its
    last row). Replications run in a few batches per worker, each reduced where it runs (``_batch_figures``): the
    scenario, which holds the whole pipeline, travels once per batch, and memory does not grow with replications ×
    open deals."""
    scenario = forecast_scenario(cut, pipeline_file, months, seed)
    start = pd.Timestamp(scenario.start)
    until = None if arrivals_until is None else (arrivals_until - start) / pd.Timedelta(days=1)
    deals = cut.pipeline[cut.pipeline["kind"].eq("opportunity")].reset_index(drop=True)
    windows = _deal_windows(cut)
    batches = np.array_split(np.arange(replications), min(replications, _BATCHES_PER_WORKER * workers) if workers > 1 else 1)
    # map_replications numbers the batches: batch b runs replications batches[b]
    parts = map_replications(_batch_figures, scenario, len(batches), seed, workers, None, batches, len(deals), until, windows)
    figures = np.concatenate([figures for figures, _, _ in parts])  # replication × measure × month × segment
    won_by, closed_by = sum(won for _, won, _ in parts), sum(closed for _, _, closed in parts)
    labels = [str(cut.start + i) for i in range(months)]
    index = pd.MultiIndex.from_product([range(replications), labels, list(scenario.segments)], names=["replication", "month", "segment"])
    by_replication = pd.DataFrame(figures.transpose(0, 2, 3, 1).reshape(-1, len(MEASURES)), index=index, columns=list(MEASURES))
    by_replication = by_replication.astype({"won": int}).reset_index()
    return Forecast(cut.start, labels, by_replication, _bands(by_replication),
                    _deal_view(cut, deals, won_by / replications, closed_by / replications))


#: Batches of replications per worker: enough that workers finish together, few enough that the scenario (with
#: the whole pipeline) is sent, and its snapshot converted, only a few times.
_BATCHES_PER_WORKER = 4
#: Months ahead that a deal's close is placed in; a later close, or none, is placed at this month.
_MONTHS_AHEAD = 120


def _deal_windows(cut: Cut) -> dict[str, int]:
    """The deal view's windows, each as its last month counted from the first forecast month (0): that month, the
    end of its quarter and the end of the next quarter."""
    first = pd.Period(cut.start, "Q")
    return {"p_won_this_month": 0, "p_won_this_quarter": ((first + 1).start_time.to_period("M") - cut.start).n - 1,
            "p_won_next_quarter": ((first + 2).start_time.to_period("M") - cut.start).n - 1}


def _batch_figures(scenario: Scenario, batch: int, seed: int, batches: list[np.ndarray], deals: int,
                   arrivals_until: float | None, windows: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replications ``batches[batch]`` reduced to what a forecast needs: won deals and bookings per replication,
    measure, month and segment; and per open deal of the pipeline (in its order), in how many of them it is won by
    the end of each window (window × deal) and closed by the end of each month (month × deal)."""
    horizon, segments = scenario.horizon_months, len(scenario.segments)
    bounds = month_starts(scenario.model_copy(update={"horizon_months": _MONTHS_AHEAD}))
    figures = np.zeros((len(batches[batch]), len(MEASURES), horizon, segments))
    won_by, closed_by = np.zeros((len(windows), deals), dtype=np.int64), np.zeros((horizon, deals), dtype=np.int64)
    last_months = np.array(list(windows.values()))[:, None]
    for i, replication in enumerate(batches[batch]):
        outcome = lead_outcomes(scenario, int(replication), seed)
        leads, close = outcome.leads, outcome.times.close
        later = np.isnan(close) | (close >= bounds[-1])
        month = np.where(later, _MONTHS_AHEAD, np.searchsorted(bounds, np.nan_to_num(close), side="right") - 1)
        won = outcome.state == LeadState.WON
        counted = won & (month < horizon)
        if arrivals_until is not None:
            counted &= (leads.origin != Origin.NEW) | (leads.time <= arrivals_until)
        cell = month[counted] * segments + leads.segment[counted]
        figures[i, 0] = np.bincount(cell, minlength=horizon * segments).reshape(horizon, segments)
        figures[i, 1] = np.bincount(cell, weights=leads.amount[counted], minlength=horizon * segments).reshape(horizon, segments)
        carried = leads.origin == Origin.DEAL
        row = leads.snapshot_row[carried] - 2  # deals come first in the pipeline file, after its header
        won_month, close_month = np.full(deals, _MONTHS_AHEAD), np.full(deals, _MONTHS_AHEAD)
        close_month[row] = month[carried]
        won_month[row] = np.where(won[carried], month[carried], _MONTHS_AHEAD)
        won_by += won_month <= last_months
        closed_by += close_month <= np.arange(horizon)[:, None]
    return figures, won_by, closed_by


def _bands(by_replication: pd.DataFrame) -> pd.DataFrame:
    """Mean and quantiles per month and segment, and for all segments together (``all``)."""
    total = by_replication.groupby(["replication", "month"], as_index=False)[list(MEASURES)].sum().assign(segment="all")
    frame = pd.concat([by_replication, total], ignore_index=True)
    grouped = frame.groupby(["month", "segment"])[list(MEASURES)]
    parts = [grouped.mean().add_suffix("_mean")] + [grouped.quantile(q).add_suffix(f"_{name}") for name, q in QUANTILES.items()]
    bands = pd.concat(parts, axis=1).reset_index()
    return bands[["month", "segment"] + [f"{m}_{s}" for m in MEASURES for s in ("mean", *QUANTILES)]]


def _deal_view(cut: Cut, deals: pd.DataFrame, won_by: np.ndarray, closed_by: np.ndarray) -> pd.DataFrame:
    """Per open deal of the pipeline: P(won by the end of each window: the first month, its quarter, the next
    quarter), and the month by whose end half the replications have closed it (its median close; ``later`` when that
    is after the horizon); from the shares of replications that won it by each window and closed it by each month."""
    view = deals.reindex(columns=["id", "segment", "stage", "age_days", "amount"])
    for column, share in zip(_deal_windows(cut), won_by):
        view[column] = share
    median = np.where((closed_by >= 0.5).any(axis=0), (closed_by >= 0.5).argmax(axis=0), len(closed_by))
    labels = np.array([str(cut.start + m) for m in range(len(closed_by))] + ["later"], dtype=object)
    view["expected_close_month"] = labels[median]
    return view


# ----- back-tests -----


@dataclass(frozen=True)
class Backtest:
    """``monthly``: per cut, month and measure: the actual figure, the forecast's mean and quantiles and the naive
    forecasts; ``metrics``: per method, measure and horizon month (and ``all``), MAPE, bias, P10–P90 coverage and
    pinball loss; ``calibrations``: the fit of each cut."""

    monthly: pd.DataFrame
    metrics: dict
    calibrations: dict[str, dict]


def run_backtest(raw: RawExport, mapping: Mapping, cuts: list[date], horizon_months: int, replications: int = 20,
                 seed: int = 0, workers: int = 1, since: date | None = None) -> Backtest:
    """Forecast from each cut (fitted on what was known the day before) and compare up to ``horizon_months`` months
    with what happened, up to the last full month with a close in the export."""
    truth = audit(raw, mapping, since=since)
    used = truth.used
    first_created, last_created, last_close = used["created_at"].min(), used["created_at"].max(), used["closed_at"].max()
    if pd.isna(first_created):
        raise CalibrationError("--cut", ["no row of the export is usable"])
    last_month = (last_close + pd.Timedelta(days=1)).to_period("M") - 1
    actual = _actual(used, mapping)
    first_close = used["closed_at"].min() if used["closed_at"].notna().any() else first_created
    rows, calibrations = [], {}
    for cut in sorted(set(cuts)):
        if pd.Timestamp(cut) <= first_created:
            raise CalibrationError("--cut", [f"no rows before the cut {cut}: the first usable row was created on {first_created.date()}"])
        months = min(horizon_months, (last_month - pd.Period(cut, "M")).n + 1)
        if months < 1:
            raise CalibrationError("--cut", [f"nothing to compare: the cut {cut} is after the last full month {last_month}"])
        fitted = fit_cut(raw, mapping, cut - timedelta(days=1), since, seed)
        with tempfile.TemporaryDirectory(prefix="salesops-cut-") as folder:
            forecast = run_forecast(fitted, months, Path(folder) / "pipeline.csv", replications, seed, workers, last_created)
        calibrations[str(cut)] = fitted.calibration.to_dict()
        naive = naive_forecasts(fitted, actual, forecast.months, first_close)
        bands = forecast.monthly[forecast.monthly["segment"].eq("all")].set_index("month")
        for horizon, month in enumerate(forecast.months, start=1):
            for measure in MEASURES if mapping.columns.amount else ("won",):
                row = {"cut": str(cut), "month": month, "horizon": horizon, "measure": measure,
                       "actual": float(actual[measure].get(month, 0.0))}
                row.update({name: float(bands.loc[month, f"{measure}_{name}"]) for name in ("mean", *QUANTILES)})
                row.update({method: naive[method][measure].get(month, np.nan) for method in NAIVE_METHODS})
                rows.append(row)
    monthly = pd.DataFrame(rows)
    return Backtest(monthly, accuracy_by_horizon(monthly), calibrations)


def _actual(used: pd.DataFrame, mapping: Mapping) -> dict[str, pd.Series]:
    """Won deals and bookings by close month, as the whole export records them."""
    won = used[used["outcome"].eq("won")]
    month = won["closed_at"].dt.to_period("M").astype(str)
    bookings = won["amount"].fillna(0.0).groupby(month).sum() if mapping.columns.amount else pd.Series(dtype=float)
    return {"won": month.value_counts().astype(float), "bookings": bookings}


def naive_forecasts(cut: Cut, actual: dict[str, pd.Series], months: list[str], first_close: pd.Timestamp) -> dict[str, dict[str, dict]]:
    """The three naive forecasts of each measure for ``months``, from what was known at the cut: the mean of the
    three full months before it, the same month a year earlier, and the weighted pipeline. Only full months since
    the export's first close count as history (before it, a month without closes says the records had not begun,
    not that nothing was sold). Per method and measure, a map month → figure."""
    before = [str(cut.start - k) for k in (3, 2, 1)]
    first_full = pd.Period(first_close, "M") + (0 if first_close.day == 1 else 1)
    result: dict[str, dict[str, dict]] = {method: {} for method in NAIVE_METHODS}
    for measure, series in actual.items():
        known = [series.get(m, 0.0) for m in before if pd.Period(m, "M") >= first_full]
        result["moving_average"][measure] = {m: float(np.mean(known)) if known else np.nan for m in months}
        result["last_year"][measure] = {m: float(series.get(str(pd.Period(m, "M") - 12), 0.0)) if pd.Period(m, "M") - 12 >= first_full else np.nan
                                        for m in months}
    pipeline = weighted_pipeline(cut)
    for measure in MEASURES:
        result["weighted_pipeline"][measure] = {m: float(pipeline[measure].get(m, 0.0)) for m in months}
    return result


def weighted_pipeline(cut: Cut) -> pd.DataFrame:
    """Each open deal weighted by its stage's historical win rate (won among deals closed from that stage, by
    segment), closing at its stage's median time from entry to a won close less the days it has spent there (at
    once if older), with its amount or, without one, the segment's mean won amount. Per close month: won, bookings."""
    used, fitted = cut.checked.used, cut.calibration
    closing = fitted.observed_steps_[-2]
    entered_at = {STAGE_NAME: fitted.step_time(used, closing), DISCOVERY: fitted.step_time(used, "sql") if "sql" in fitted.observed_steps_ else None}
    won, closed = used["outcome"].eq("won"), used["outcome"].isin(["won", "lost"])
    mean_amount = used["amount"][won & (used["amount"] > 0)].groupby(used["segment"]).mean() if "amount" in used else pd.Series(dtype=float)
    deals = cut.pipeline[cut.pipeline["kind"].eq("opportunity")]
    frames = []
    for (stage, segment), group in deals.groupby(["stage", "segment"]):
        entered = entered_at.get(stage)
        if entered is None:
            continue
        reached = entered.notna() & (used["segment"] == segment)
        rate = won[reached & closed].mean() if (reached & closed).any() else won[entered.notna() & closed].mean()
        days = ((used["closed_at"] - entered) / pd.Timedelta(days=1))[reached & won]
        median = float(days.median()) if len(days) else 0.0
        close = pd.Timestamp(cut.as_of) + pd.Timedelta(days=1) + pd.to_timedelta((median - group["age_days"].astype(float)).clip(lower=0), unit="D")
        amount = group["amount"].astype(float).fillna(mean_amount.get(segment, 0.0))
        frames.append(pd.DataFrame({"month": close.dt.to_period("M").astype(str), "won": rate, "bookings": rate * amount}))
    if not frames:
        return pd.DataFrame({"won": pd.Series(dtype=float), "bookings": pd.Series(dtype=float)})
    table = pd.concat(frames).groupby("month")[["won", "bookings"]].sum()
    first = str(cut.start)
    early = table.index < first  # closing before the first forecast month: due now, counted in it
    table.loc[first] = table[early].sum() + (table.loc[first] if first in table.index else 0.0)
    return table[~table.index.isin(table.index[early])]


def accuracy_by_horizon(monthly: pd.DataFrame) -> dict:
    """Per method (``simulation`` and the naive ones), measure and horizon month (and ``all`` horizons): MAPE over
    months with a non-zero actual, bias (total forecast / total actual − 1), the share of months inside P10–P90
    (the simulation only), the mean pinball loss (over P10, P50, P90 for the simulation; of the point forecast at
    the median for the others) and n."""
    metrics: dict = {}
    for measure, rows in monthly.groupby("measure"):
        for horizon, group in [*rows.groupby("horizon"), ("all", rows)]:
            for method in ("simulation", *NAIVE_METHODS):
                point = group["mean"] if method == "simulation" else group[method]
                usable = point.notna()
                if not usable.any():
                    continue
                metrics.setdefault(method, {}).setdefault(measure, {})[str(horizon)] = _scores(
                    group["actual"][usable].to_numpy(), point[usable].to_numpy(),
                    group[list(QUANTILES)][usable] if method == "simulation" else None)
    return metrics


def _scores(actual: np.ndarray, point: np.ndarray, quantiles: pd.DataFrame | None) -> dict:
    nonzero = actual != 0
    scores = {
        "mape": float(np.mean(np.abs(point[nonzero] - actual[nonzero]) / actual[nonzero])) if nonzero.any() else None,
        "bias": float(point.sum() / actual.sum() - 1) if actual.sum() else None,
        "n": int(len(actual)),
    }
    if quantiles is None:
        scores["pinball"] = float(np.mean(0.5 * np.abs(actual - point)))
        return scores
    scores["inside_p10_p90"] = float(np.mean((quantiles["p10"].to_numpy() <= actual) & (actual <= quantiles["p90"].to_numpy())))
    scores["pinball"] = float(np.mean([_pinball(actual, quantiles[name].to_numpy(), q) for name, q in QUANTILES.items()]))
    return scores


def _pinball(actual: np.ndarray, forecast: np.ndarray, q: float) -> float:
    """The quantile (pinball) loss of a forecast of the q-quantile, averaged over months."""
    error = actual - forecast
    return float(np.mean(np.maximum(q * error, (q - 1) * error)))


def cut_dates(spec: str) -> list[date]:
    """``FIRST:LAST:STEP``: cuts from FIRST to LAST (included) every STEP months (``2018-01-01:2018-06-01:1``)."""
    try:
        start, end, step = spec.split(":")
        first, last, every = pd.Period(start, "M"), pd.Period(end, "M"), int(step)
    except ValueError:
        raise CalibrationError("--cuts", [f"expected FIRST:LAST:STEP such as 2018-01-01:2018-06-01:1, got {spec!r}"]) from None
    if every < 1 or last < first:
        raise CalibrationError("--cuts", [f"expected a step of at least 1 and LAST not before FIRST, got {spec!r}"])
    return [(first + k).start_time.date() for k in range(0, (last - first).n + 1, every)]
