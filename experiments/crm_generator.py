"""The project's own sample data: a CRM export written from a known scenario by simulating it with the engine.

One row per lead, as a CRM would hold it at the end of the horizon (the as-of date): what happened after it is
not known yet, so such deals are open. Because the scenario is known, the export is ground truth for calibration:
fitting it must recover the scenario's rates and durations. Read it with the shipped mapping ``generated``.

Columns: ``lead_id``; ``created_at`` (arrival); ``segment``, ``territory``, ``source``; ``sdr`` (first-touch rep,
a roster id); ``first_response_at`` (first touch, as the lead felt it); ``mql_at`` (marketing qualification, at
arrival); ``sql_at``; ``opportunity_at`` (end of discovery); ``closed_at``; ``status`` (``Won``, ``Lost``,
``Disqualified``: not an MQL, closed at arrival, or not qualified at the first touch, closed when it began;
``Open``); ``stage`` (last step reached); ``amount`` (won deals). The roster has ``rep, role, start_date,
end_date``; reps on staff at the start are given a start date five years earlier (fully ramped). The roster
lists no one who left before the export's start, as an HR extract of current and recent staff would not, so only
the months from the export's start tell attrition (calibration counts exposure from the first day of the data).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine import run_replication
from engine.calendar import month_starts
from engine.people import roster
from scenarios import Scenario
from scenarios.model import InitialState

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
VETERAN_YEARS = 5


def generate_crm(scenario: Scenario, seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CRM export (one row per lead) and the rep roster of one simulated replication of ``scenario``, from an
    empty start: the export is the organisation's whole history, every lead's life in it from its arrival."""
    seed = scenario.seed if seed is None else seed
    scenario = history_scenario(scenario)
    log = run_replication(scenario, 0, seed, keep_log=True).lead_log
    horizon = float(month_starts(scenario)[-1])
    start = pd.Timestamp(scenario.start)

    def stamp(days: pd.Series | np.ndarray) -> pd.Series:
        days = pd.Series(np.asarray(days, dtype=float))
        known = days.notna() & (days < horizon)
        text = (start + pd.to_timedelta(days.where(known), unit="D")).dt.round("s").dt.strftime(TIMESTAMP_FORMAT)
        return text.where(known, "")

    state = log["state"].to_numpy()
    closed = log["close_day"].to_numpy() < horizon
    won = (state == "won") & closed
    lost = np.isin(state, ["lost", "not_opportunity"]) & closed
    not_mql = state == "not_mql"
    disqualified = state == "disqualified"
    close_day = np.select([not_mql, disqualified, won | lost], [log["arrival_day"], log["touch_day"], log["close_day"]], np.nan)
    status = np.select([won, lost, not_mql | disqualified], ["Won", "Lost", "Disqualified"], "Open")
    reached = [
        ("lead", np.ones(len(log), dtype=bool)),
        ("mql", ~not_mql),
        ("sql", log["sql_day"].to_numpy() < horizon),
        ("opportunity", log["opportunity_day"].to_numpy() < horizon),
    ]
    stage = np.select([won, lost] + [mask for _, mask in reversed(reached)], ["won", "lost"] + [name for name, _ in reversed(reached)], "lead")
    response_at = log["arrival_day"] + log["response_hours"] / 24.0
    export = pd.DataFrame({
        "lead_id": [f"L{i + 1:07d}" for i in range(len(log))],
        "created_at": stamp(log["arrival_day"]),
        "segment": log["segment"],
        "territory": log["territory"],
        "source": log["source"],
        "sdr": np.where(log["rep"].to_numpy() >= 0, [f"rep-{int(r):03d}" for r in log["rep"].clip(lower=0)], ""),
        "first_response_at": stamp(response_at.where(log["touch_day"].notna())),
        "mql_at": stamp(log["arrival_day"].where(~pd.Series(not_mql))),
        "sql_at": stamp(log["sql_day"]),
        "opportunity_at": stamp(log["opportunity_day"]),
        "closed_at": stamp(close_day),
        "status": status,
        "stage": stage,
        "amount": np.where(won, log["amount"].round(2), np.nan),
    })
    return export, _roster(scenario, seed, horizon, start)


def history_scenario(scenario: Scenario) -> Scenario:
    """The scenario from an empty start (no warm-up, no snapshot): what the generator simulates."""
    return scenario.model_copy(update={"initial_state": InitialState(warm_up_months=0)})


def _roster(scenario: Scenario, seed: int, horizon: float, start: pd.Timestamp) -> pd.DataFrame:
    reps = roster(scenario, month_starts(scenario), seed, 0)
    veteran_start = (start - pd.DateOffset(years=VETERAN_YEARS)).strftime("%Y-%m-%d")
    return pd.DataFrame({
        "rep": [f"rep-{i:03d}" for i in range(len(reps))],
        "role": [rep.role for rep in reps],
        "start_date": [(start + pd.Timedelta(days=rep.start)).strftime("%Y-%m-%d") if rep.hired else veteran_start for rep in reps],
        "end_date": [(start + pd.Timedelta(days=rep.end)).strftime("%Y-%m-%d") if rep.end < horizon else "" for rep in reps],
    })
