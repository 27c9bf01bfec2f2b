"""Scoring territory designs: their measures for ``summary.json``, and by simulation: a design becomes a Scenario,
the engine says what it does.

Each rep's territory becomes a scenario territory whose ``lead_share`` is the rep's load of a chosen attribute
(workload, potential…), so leads arrive where the design puts the accounts. The design's reps are one role of the
base scenario (by default the role that owns opportunities), one rep per territory; every other working role keeps
its base headcount, spread over the new territories by lead share (largest remainder, at least one each). Hiring
plans become monthly totals that the engine spreads by lead share. Today's design goes through the same
construction, so the two are compared on equal terms, with the same seed (common random numbers).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from engine import Results, run_replication
from engine.calendar import month_starts
from optimizers.territories import Design, DesignSpec, measure_design
from optimizers.territory_inputs import TerritoryInputs
from scenarios import Scenario, validate_scenario

Runner = Callable[[Scenario], Results]


def design_scenario(base: Scenario, loads: pd.Series, rep_role: str | None = None, label: str = "design") -> Scenario:
    """The base scenario with one territory per rep, lead shares from ``loads`` (rep → load) and reps placed."""
    role_name = rep_role or base.opportunity_role
    if role_name not in base.roles:
        raise ValueError(f"role {role_name!r} is not in scenario {base.name!r}; roles: {', '.join(base.roles)}")
    shares = loads.clip(lower=0.0)
    if shares.sum() <= 0:
        raise ValueError("every rep's load is zero: nothing to share leads by")
    floor = shares[shares > 0].min() * 1e-3  # a territory with no load still exists, with almost no leads
    shares = (shares.where(shares > 0, floor) / shares.sum()).astype(float)
    data = base.model_dump(mode="json", exclude_none=True)
    data["name"] = f"{base.name} / {label}"
    data["territories"] = {str(rep): {"lead_share": float(share)} for rep, share in shares.items()}
    for source in data["lead_sources"].values():
        source.pop("territories", None)
    for name, role in data["roles"].items():
        if role.get("span_of_control") is not None:
            continue
        role["hiring_plan"] = {month: sum(plan.values()) for month, plan in role.get("hiring_plan", {}).items()}
        if name == role_name:
            role["headcount"] = {str(rep): 1 for rep in shares.index}
        elif role["works"] != "none" or role.get("headcount"):
            role["headcount"] = _spread(sum(role.get("headcount", {}).values()), shares)
    return validate_scenario(data, source=data["name"])


def _spread(total: int, shares: pd.Series) -> dict[str, int]:
    """``total`` people over territories in proportion to shares, largest remainder first, at least one each."""
    exact = shares.to_numpy() * total
    counts = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - counts))[: total - counts.sum()]:
        counts[index] += 1
    return {str(rep): int(max(count, 1)) for rep, count in zip(shares.index, counts)}


def replications_runner(replications: int, seed: int | None = None) -> Runner:
    """Simulate in this process, keeping the lead log that per-territory KPIs need."""

    def run(scenario: Scenario) -> Results:
        return Results.from_replications([run_replication(scenario, r, seed, keep_log=True) for r in range(replications)])

    return run


def territory_kpis(results: Results, scenario: Scenario) -> pd.DataFrame:
    """Per territory, means over replications: leads a month, response hours (mean, P90), deals won, bookings and
    the utilisation of the opportunity role (slot-days held / slot-days of its starting headcount at full
    productivity). Needs the lead log."""
    if results.lead_log is None:
        raise ValueError("per-territory KPIs need the lead log: simulate with keep_log=True")
    log = results.lead_log
    replications = log["replication"].nunique()
    horizon_days = float(month_starts(scenario)[-1])
    grouped = log.groupby("territory")
    frame = pd.DataFrame({
        "leads_per_month": grouped.size() / replications / scenario.horizon_months,
        "response_hours_mean": grouped["response_hours"].mean(),
        "response_hours_p90": grouped["response_hours"].quantile(0.9),
        "won": grouped["state"].apply(lambda s: (s == "won").sum()) / replications,
        "bookings": grouped["amount"].sum() / replications,
    }).reindex(list(scenario.territories))
    role_name = scenario.opportunity_role
    if role_name is not None:
        role = scenario.roles[role_name]
        held = (log["close_day"].clip(upper=horizon_days) - log["accept_day"]).clip(lower=0.0).fillna(0.0)
        slot_days = {t: role.headcount.get(t, 0) * role.open_opportunity_limit * (1 - role.admin_share) * horizon_days for t in scenario.territories}
        used = held.groupby(log["territory"]).sum() / replications
        frame["utilization"] = [used.get(t, 0.0) / slot_days[t] if slot_days[t] else math.nan for t in scenario.territories]
    frame.index.name = "territory"
    return frame


def compare_designs(base: Scenario, designs: dict[str, pd.Series], run: Runner, rep_role: str | None = None) -> pd.DataFrame:
    """Simulate each design (name → rep loads) and stack the per-territory KPIs with a ``design`` column."""
    frames = []
    for label, loads in designs.items():
        scenario = design_scenario(base, loads, rep_role, label)
        kpis = territory_kpis(run(scenario), scenario).reset_index()
        kpis.insert(0, "design", label)
        frames.append(kpis)
    return pd.concat(frames, ignore_index=True)


def design_summary(inputs: TerritoryInputs, spec: DesignSpec, design: Design, time_limit: float | None) -> dict[str, object]:
    """What ``summary.json`` says of a design: it and today's (from the units' owners, when any unit has one) on the
    same measures, with the solver's report."""
    measures = measure_design(inputs, spec, design.assignment, design.centres)
    owners = inputs.units["owner"]
    today = measure_design(inputs, spec, owners.dropna()) if owners.notna().any() else None
    return {
        "status": design.result.status,
        "objective": {"order": list(spec.objective), "value": design.result.objective, "stages": [s.objective for s in design.solves]},
        "total_distance": design.compactness,
        "distance": inputs.distance_source,
        "disruption": design.disruption,
        "units_moved": int(design.moves["moved"].sum()),
        "balance": {b.attribute: b.tolerance for b in spec.balance},
        "caps": {c.attribute: c.limit for c in spec.caps},
        "rep_loads": measures["rep_loads"],
        "balance_violations": measures["balance_violations"],
        "today": today,
        "time_limit_seconds": time_limit,
        "solver": [s.as_dict() for s in design.solves],
        "search": list(design.search),
        "gap": design.result.gap,
        "build_seconds": sum(s.build_seconds for s in design.solves),
        "solve_seconds": sum(s.solve_seconds for s in design.solves),
    }


def simulated_totals(scores: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Organisation-wide figures per design: leads, bookings and won summed; response and utilisation averaged over
    territories weighted by leads."""
    totals = {}
    for label, frame in scores.groupby("design", sort=False):
        leads = frame["leads_per_month"]
        totals[label] = {
            "leads_per_month": leads.sum(),
            "won": frame["won"].sum(),
            "bookings": frame["bookings"].sum(),
            "response_hours_mean": _weighted_mean(frame["response_hours_mean"], leads),
            "worst_territory_response_hours_p90": frame["response_hours_p90"].max(),
            "utilization_mean": _weighted_mean(frame["utilization"], leads),
            "utilization_max": frame["utilization"].max(),
        }
    return totals


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    """Mean of the known values weighted by ``weights``; NaN when no known value has weight."""
    known = values.notna() & (weights > 0)
    return float((values[known] * weights[known]).sum() / weights[known].sum()) if known.any() else math.nan
