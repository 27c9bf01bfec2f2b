"""The simulation engine: a Scenario and a seed in, tidy results out. No file I/O, no printing.

``run_replication`` is the unit of work (a pure function of scenario, seed and replication number), so that
replications can run anywhere, in any order, and give identical results; ``simulate`` runs several in turn;
``lead_outcomes`` runs one and returns its leads' arrays only, for a caller that reduces them itself.
Each replication starts from the work open on the first day (``engine.initial``): the scenario's snapshot, or a
warm-up simulated before the start; with parameter draws (a calibration's estimation error), replication r runs on
draw r mod their number, the same in every scenario compared.
"""

from __future__ import annotations

from dataclasses import dataclass
import pandas as pd

from engine.initial import carried_work, warm_up_length
from engine.results import (
    LEAD_LOG_COLUMNS, MONTHLY_COLUMNS, SUMMARY_KPIS, LeadOutcomes, LeadState, ReplicationResult, lead_states, summarize,
    summarize_replication,
)
from engine.simulation import LeadTimes, Replication
from scenarios.loading import with_parameter_draw
from scenarios.model import Scenario


@dataclass(frozen=True)
class Results:
    """Replications of one scenario.

    ``monthly``: one row per replication and month (columns in ``MONTHLY_COLUMNS``); ``summary``: per KPI over
    the horizon, mean and P10/P50/P90 across replications; ``bands``: per month, the same statistics of every
    monthly column; ``states``: per replication, how many leads end in each ``LeadState``; ``lead_log``: one row
    per lead and replication (``LEAD_LOG_COLUMNS``) when asked for.
    """

    monthly: pd.DataFrame
    summary: pd.DataFrame
    bands: pd.DataFrame
    states: pd.DataFrame
    lead_log: pd.DataFrame | None = None

    @classmethod
    def from_replications(cls, replications: list[ReplicationResult]) -> "Results":
        monthly, summary, bands = summarize(replications)
        logs = [r.lead_log for r in replications if r.lead_log is not None]
        lead_log = pd.concat(logs, ignore_index=True) if logs else None
        return cls(monthly, summary, bands, pd.DataFrame([r.states for r in replications]), lead_log)


def run_replication(
    scenario: Scenario, replication: int, seed: int | None = None, keep_log: bool = False
) -> ReplicationResult:
    """Simulate one replication; ``seed`` defaults to the scenario's; ``keep_log`` keeps one row per lead."""
    sim, times = _simulated(scenario, replication, seed)
    return summarize_replication(sim, times, replication, keep_log)


def lead_outcomes(scenario: Scenario, replication: int, seed: int | None = None) -> LeadOutcomes:
    """Simulate one replication and return its leads' arrays only: no tables, for a caller that needs a few
    figures of many replications."""
    sim, times = _simulated(scenario, replication, seed)
    return LeadOutcomes(sim.leads, times, lead_states(sim, times))


def _simulated(scenario: Scenario, replication: int, seed: int | None) -> tuple[Replication, LeadTimes]:
    seed = scenario.seed if seed is None else seed
    months = warm_up_length(scenario)  # the scenario's, whatever parameters the replication draws
    scenario = with_parameter_draw(scenario, replication)
    sim = Replication(scenario, seed, replication, carried_work(scenario, seed, replication, months))
    return sim, sim.run()


def simulate(scenario: Scenario, replications: int = 1, seed: int | None = None) -> Results:
    """Simulate ``replications`` replications in this process (``experiments.runner`` runs them in parallel)."""
    return Results.from_replications([run_replication(scenario, r, seed) for r in range(replications)])


__all__ = [
    "LEAD_LOG_COLUMNS",
    "MONTHLY_COLUMNS",
    "SUMMARY_KPIS",
    "LeadOutcomes",
    "LeadState",
    "ReplicationResult",
    "Results",
    "lead_outcomes",
    "run_replication",
    "simulate",
]
