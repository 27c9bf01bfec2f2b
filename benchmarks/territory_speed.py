"""Territory design speed: today's Pyomo model against the array model, at 10,000 × 100 and 50,000 × 500.

Synthetic instances draw unit locations from the US county population centres (seeded) with lognormal workloads;
reps live at randomly chosen units; balance workload within ±10%; compactness weighted by workload. Each case runs
in its own process, so that its peak memory is its own. Rows:

- ``today``: the Pyomo MIP on each unit's 10 nearest reps, solved by HiGHS within the time limit (its gap is
  over those pairs only);
- ``arrays``: the design as ``salesops optimize territories`` solves it now (``optimizers/territory_lp.py``): every
  rep allowed, column generation, the LP rounded, repaired and improved (``optimizers/territory_search.py``; its
  gap and seconds are columns too), a proof MIP only when that is not within 1%, the gap proven against a bound
  over every pair.

Wall-clock and CPU seconds are both printed with the load average, as the machine is shared. OR-Library pmed20 and
pmed30 (p-median, the Pyomo model) check optimality at scale with ``--pmed``.
Run: ``.venv/bin/python benchmarks/territory_speed.py [--sizes 10000x100:60,50000x500:600] [--today-limit S] [--pmed]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from optimizers.solve import SolveOptions, solve
from optimizers.territories import Balance, DesignSpec, _problem, build_model, design_territories
from optimizers.territory_inputs import TerritoryInputs, haversine_km, read_orlib_pmed
from optimizers.territory_lp import relative_gap

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COUNTIES = DATA / "us-county-centers-of-population-2020" / "CenPop2020_Mean_CO.txt"
PMED_OPTIMA = {"pmed20": 1789, "pmed30": 1989}
GAP = 0.01
TODAY_NEAREST = 10


def synthetic(units: int, reps: int, seed: int) -> TerritoryInputs:
    rng = np.random.default_rng(seed)
    counties = pd.read_csv(COUNTIES)
    picked = counties.sample(units, replace=units > len(counties), random_state=seed)
    lat = picked["LATITUDE"].to_numpy() + rng.normal(0, 0.05, units)
    lon = picked["LONGITUDE"].to_numpy() + rng.normal(0, 0.05, units)
    unit_ids = [f"u{i}" for i in range(units)]
    frame = pd.DataFrame({"workload": rng.lognormal(3, 0.6, units), "lat": lat, "lon": lon, "owner": None, "locked": False}, index=pd.Index(unit_ids, name="unit"))
    homes = rng.choice(units, reps, replace=False)
    rep_frame = pd.DataFrame({"weight": 1.0, "lat": lat[homes], "lon": lon[homes], "home_unit": [unit_ids[h] for h in homes], "placed": True}, index=pd.Index([f"r{k}" for k in range(reps)], name="rep"))
    distance = haversine_km(lat[homes][:, None], lon[homes][:, None], lat[None, :], lon[None, :])
    return TerritoryInputs(frame, rep_frame, ("workload",), distance)


def spec(nearest: int | None = None) -> DesignSpec:
    return DesignSpec(balance=(Balance("workload", 0.10),), weight="workload", nearest=nearest)


def today_row(units: int, reps: int, limit: float) -> dict[str, object]:
    """The model as it was solved before the array model: Pyomo, each unit's 10 nearest reps, one HiGHS run."""
    import pyomo.environ as pyo

    inputs = synthetic(units, reps, seed=units + reps)
    started = time.perf_counter()
    model = build_model(_problem(inputs, spec(TODAY_NEAREST)))
    model.objective = pyo.Objective(expr=model.objective_terms["compactness"])
    build = time.perf_counter() - started
    result = solve(model, SolveOptions(time_limit=limit, rel_gap=GAP), build)
    return {"pairs": len(model.x), "status": result.status, "gap": result.gap, "objective": result.objective, "build s": build, "solve s": result.solve_seconds}


def arrays_row(units: int, reps: int, limit: float) -> dict[str, object]:
    """The design as the command solves it now: every rep allowed, the gap proven over every pair."""
    inputs = synthetic(units, reps, seed=units + reps)
    design = design_territories(inputs, spec(), SolveOptions(time_limit=limit, rel_gap=GAP))
    search = design.search[-1]
    return {
        "pairs": units * reps, "status": design.result.status, "gap": design.result.gap, "objective": design.result.objective,
        "build s": design.result.build_seconds, "solve s": design.result.solve_seconds,
        "LP pairs": search.get("lp_pairs"), "pricing rounds": search.get("pricing_rounds"),
        "heuristic gap": _gap(search.get("heuristic_objective"), search.get("lp_bound")), "heuristic s": search.get("heuristic_seconds"),
        "proof pairs": search.get("proof_pairs"),
    }


def _gap(objective: float | None, bound: float | None) -> float | None:
    """The repaired and improved LP rounding's gap to the bound, before any proof MIP."""
    return None if objective is None or bound is None else relative_gap(objective, bound)


def pmed_row(name: str) -> dict[str, object]:
    path = DATA / "orlib-pmed" / f"{name}.txt"
    inputs = read_orlib_pmed(path.read_text(), path.name)
    design = design_territories(inputs, DesignSpec(), SolveOptions(rel_gap=0.0, time_limit=600))
    return {
        "pairs": len(inputs.units) ** 2, "status": design.result.status, "gap": design.result.gap, "objective": design.compactness,
        "build s": design.result.build_seconds, "solve s": design.result.solve_seconds, "published optimum": PMED_OPTIMA[name],
    }


def _measured(job: tuple, queue: multiprocessing.Queue) -> None:
    """Run one case and send its figures with this process's wall and CPU seconds and peak memory."""
    from optimizers.territories import DesignInfeasible

    function, args = job
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        row = function(*args)
    except DesignInfeasible as error:  # e.g. no design within the time limit: a figure too
        row = {"status": "no design", "reason": str(error)[:80]}
    except Exception as error:  # noqa: BLE001 - a row whatever happens, or the parent waits for it for ever
        row = {"status": "error", "reason": f"{type(error).__name__}: {error}"[:80]}
    row.update({"wall s": time.perf_counter() - wall, "CPU s": time.process_time() - cpu, "peak MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    queue.put(row)


def measured(function, *args) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measured, args=((function, args), queue))
    process.start()
    row = queue.get()
    process.join()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000x100:60,50000x500:600", help="UNITSxREPS:SECONDS, comma-separated")
    parser.add_argument("--today-limit", type=float, default=None, help="cap today's solve at this many seconds (default: the size's)")
    parser.add_argument("--pmed", action="store_true", help="also solve OR-Library pmed20 and pmed30 to their published optima")
    args = parser.parse_args()
    if not COUNTIES.exists():
        sys.exit(f"needs the shared data folder: {COUNTIES}")
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    rows = []
    for size in args.sizes.split(","):
        shape, _, seconds = size.partition(":")
        units, reps = (int(n) for n in shape.split("x"))
        limit = float(seconds)
        today_limit = min(limit, args.today_limit) if args.today_limit else limit
        rows.append({"instance": f"{units} × {reps}", "model": f"today: Pyomo, {TODAY_NEAREST} nearest, {today_limit:g} s", **measured(today_row, units, reps, today_limit)})
        print(rows[-1], flush=True)
        rows.append({"instance": f"{units} × {reps}", "model": f"arrays: every rep, {limit:g} s", **measured(arrays_row, units, reps, limit)})
        print(rows[-1], flush=True)
    if args.pmed:
        rows += [{"instance": name, "model": "p-median, Pyomo", **measured(pmed_row, name)} for name in PMED_OPTIMA]
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    table = pd.DataFrame(rows).set_index(["instance", "model"])
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.float_format", "{:,.4g}".format):
        print(table.to_string())


if __name__ == "__main__":
    main()
