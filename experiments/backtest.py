"""Back-test of a calibrated forecast: fit on what was known at a cut date, simulate forward, compare with what
happened after it (monthly won deals and bookings: MAPE, bias, share of months inside the simulated P10–P90).

The simulation starts at the first month of the training data, so that deals open at the cut are in its pipeline
too (a simulation started empty at the cut would under-forecast its first months); only months from the cut on
are compared. The organisation is given ample capacity (history does not say how long reps took per lead, so
their queues cannot be rebuilt), so the forecast tests the calibrated funnel, arrivals and cycle times. Leads are
therefore touched at once in the simulation, and the funnel takes the *observed* SQL rates with no response decay:
rates corrected to immediate response would credit every lead with a response the organisation never gave. The
observed durations already hold the waits for reps that history saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from calibration import Calibration, CalibrationError, Mapping, RawExport, apply_calibration, audit
from experiments.runner import run_replications
from scenarios import validate_scenario

#: Enough first-touch capacity that no lead waits for a rep, and no limit on open opportunities.
UNCONSTRAINED_ROLES = {
    "sdr": {"works": "leads", "headcount": {"all": 1},
            "working_hours": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": 0, "end": 24},
            "handling_hours": {"dist": "fixed", "value": 0.001}},
    "ae": {"works": "opportunities", "headcount": {"all": 1}, "open_opportunity_limit": 10_000_000},
}


@dataclass(frozen=True)
class Backtest:
    """``monthly``: per compared month, actual and simulated (mean, P10, P50, P90) won deals and bookings;
    ``metrics``: per measure, MAPE, bias and the share of months inside P10–P90; ``calibration``: the training fit."""

    monthly: pd.DataFrame
    metrics: dict
    calibration: dict


def run_backtest(raw: RawExport, mapping: Mapping, cut: date, replications: int = 20, seed: int = 0,
                 end: date | None = None, since: date | None = None, workers: int = 1) -> Backtest:
    """Fit on rows known at ``cut`` (created from ``since``), simulate from the training data's first month and
    compare months ``cut``..``end`` (default: the last full month with a close in the export).

    The export holds leads created up to some date; deals won later from leads created after it are not in it,
    so the simulated deals of leads arriving after that date are not counted either.
    """
    if mapping.undated:
        raise CalibrationError("mapping", ["undated: true, yet a back-test needs dates"])
    cut_ts = pd.Timestamp(cut)
    truth = audit(raw, mapping, since=since)
    first_created = truth.used["created_at"].min()
    if pd.isna(first_created) or first_created >= cut_ts:
        start = "no row is usable" if pd.isna(first_created) else f"the first usable row was created on {first_created.date()}"
        raise CalibrationError("--cut", [f"no rows before the cut {cut_ts.date()}: {start}"])
    training = audit(raw, mapping, as_of=(cut_ts - pd.Timedelta(days=1)).date(), since=since)
    fitted = Calibration(seed=seed).fit(training)
    start = training.used["created_at"].min().to_period("M")
    last_close = truth.used["closed_at"].max()
    last = pd.Timestamp(end).to_period("M") if end else (last_close + pd.Timedelta(days=1)).to_period("M") - 1
    first = cut_ts.to_period("M")
    if last < first:
        raise CalibrationError("--cut", [f"nothing to compare: the cut {cut} is after the last month {last}"])
    scenario = _scenario(fitted, start, (last - start).n + 1, seed)
    results = run_replications(scenario, replications, seed, workers, keep_log=True)
    compared = [str(m) for m in pd.period_range(first, last, freq="M")]
    simulated = _simulated_monthly(results.lead_log, scenario, truth.used["created_at"].max(), compared, replications)
    won = truth.used[truth.used["outcome"].eq("won")]
    won_month = won["closed_at"].dt.to_period("M").astype(str)
    actual = pd.DataFrame({
        "won": won_month.value_counts().reindex(compared, fill_value=0),
        "bookings": won["amount"].fillna(0).groupby(won_month).sum().reindex(compared, fill_value=0.0),
    })
    measures = ["won", "bookings"] if mapping.columns.amount else ["won"]
    monthly = pd.DataFrame({"month": compared})
    metrics = {}
    for measure in measures:
        by_month = simulated.groupby("month")[measure]
        monthly[f"{measure}_actual"] = actual[measure].to_numpy()
        for label, values in (("mean", by_month.mean()), ("p10", by_month.quantile(0.1)),
                              ("p50", by_month.quantile(0.5)), ("p90", by_month.quantile(0.9))):
            monthly[f"{measure}_{label}"] = values.reindex(compared).to_numpy()
        metrics[measure] = accuracy(monthly[f"{measure}_actual"], monthly[f"{measure}_mean"],
                                    monthly[f"{measure}_p10"], monthly[f"{measure}_p90"])
    metrics["months"] = len(compared)
    metrics["replications"] = replications
    metrics["cut"] = str(cut_ts.date())
    return Backtest(monthly, metrics, fitted.to_dict())


def accuracy(actual: pd.Series, forecast: pd.Series, p10: pd.Series, p90: pd.Series) -> dict:
    """MAPE over months with a non-zero actual, bias (total forecast / total actual − 1), share inside P10–P90."""
    actual, forecast = actual.astype(float).to_numpy(), forecast.astype(float).to_numpy()
    nonzero = actual != 0
    return {
        "mape": float(np.mean(np.abs(forecast[nonzero] - actual[nonzero]) / np.abs(actual[nonzero]))) if nonzero.any() else None,
        "bias": float(forecast.sum() / actual.sum() - 1) if actual.sum() else None,
        "inside_p10_p90": float(np.mean((p10.to_numpy() <= actual) & (actual <= p90.to_numpy()))),
        "actual_total": float(actual.sum()),
        "forecast_total": float(forecast.sum()),
    }


def _simulated_monthly(log: pd.DataFrame, scenario, arrivals_end: pd.Timestamp, compared: list[str], replications: int) -> pd.DataFrame:  # noqa: ANN001
    """Won deals and bookings per replication and close month, of leads that arrived by ``arrivals_end``."""
    start = pd.Timestamp(scenario.start)
    won = log[log["state"].eq("won") & (start + pd.to_timedelta(log["arrival_day"], unit="D") <= arrivals_end)]
    month = (start + pd.to_timedelta(won["close_day"], unit="D")).dt.to_period("M").astype(str)
    grouped = won.assign(month=month).groupby(["replication", "month"])
    table = pd.DataFrame({"won": grouped.size(), "bookings": grouped["amount"].sum()})
    full = pd.MultiIndex.from_product([range(replications), compared], names=["replication", "month"])
    return table.reindex(full, fill_value=0).reset_index()


def _scenario(fitted: Calibration, start: pd.Period, months: int, seed: int):  # noqa: ANN202 - a Scenario
    """The calibrated funnel (observed SQL rates, no response decay) on an unconstrained organisation, arrivals
    re-levelled to the simulation's start."""
    fragment = fitted.scenario_fragment(with_response_decay=False)
    for name, source in fragment.get("lead_sources", {}).items():
        source["monthly_volume"] = fitted.arrivals_[name]["model"].monthly_volume(start)[0]
    base = {
        "name": "backtest", "start": start.start_time.date(), "horizon_months": months, "seed": seed,
        "territories": {"all": {}}, "roles": UNCONSTRAINED_ROLES,
        "initial_state": {"warm_up_months": 0},  # the simulation starts with the data: empty
    }
    return validate_scenario(apply_calibration(base, {"scenario": fragment}), "back-test scenario")
