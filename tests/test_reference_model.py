"""The engine against an independent model: the funnel written the obvious way in SimPy (one process per lead,
reps as Store tokens, slots as a Container; ``benchmarks/reference_simpy.py``). Both read the same leads and
roster, so their KPIs agree to within a few leads whose order differs at ties."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine import run_replication
from scenarios import load_scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_simpy import run_reference  # noqa: E402


@pytest.mark.parametrize("name, replication", [("baseline", 0), ("baseline", 1), ("hiring_push", 2)])
def test_engine_agrees_with_the_obvious_simpy_model(name: str, replication: int) -> None:
    scenario = load_scenario(name, ["initial_state.warm_up_months=0"])  # the reference model starts empty
    engine = run_replication(scenario, replication).totals
    reference = run_reference(scenario, scenario.seed, replication)
    for kpi in ("sql", "opportunities", "won", "bookings", "response_hours_mean"):
        assert engine[kpi] == pytest.approx(getattr(reference, kpi), rel=0.01), kpi
