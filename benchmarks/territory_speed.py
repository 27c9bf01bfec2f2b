"""Territory design speed: build and solve times, gap reached in a time limit, Pyomo against a matrix build.

Synthetic instances draw unit locations from the US county population centres (seeded) with lognormal workloads;
reps live at randomly chosen units; balance workload within ±10%; compactness weighted by workload. Larger
OR-Library p-median instances check optimality at scale. Run: ``.venv/bin/python benchmarks/territory_speed.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyomo.environ as pyo
import pandas as pd

from optimizers.solve import MatrixModel, SolveOptions, solve
from optimizers.territories import Balance, DesignSpec, _problem, build_model, design_territories
from optimizers.territory_inputs import TerritoryInputs, haversine_km, read_orlib_pmed

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COUNTIES = DATA / "us-county-centers-of-population-2020" / "CenPop2020_Mean_CO.txt"
PMED_OPTIMA = {"pmed20": 1789, "pmed30": 1989}
TIME_LIMIT = 60.0


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


def territory_rows(units: int, reps: int, nearest: int | None) -> dict[str, object]:
    inputs = synthetic(units, reps, seed=units + reps)
    spec = DesignSpec(balance=(Balance("workload", 0.10),), weight="workload", nearest=nearest)
    problem = _problem(inputs, spec)
    started = time.perf_counter()
    model = build_model(problem)
    model.objective = pyo.Objective(expr=model.objective_terms["compactness"])
    pyomo_build = time.perf_counter() - started
    started = time.perf_counter()
    matrix = MatrixModel.from_pyomo(model)
    matrix_compile = time.perf_counter() - started
    options = SolveOptions(time_limit=TIME_LIMIT, rel_gap=1e-4)
    via_pyomo = solve(model, options, pyomo_build)
    via_matrix = solve(matrix, options, pyomo_build + matrix_compile)
    return {
        "instance": f"{units} units × {reps} reps" + (f", {nearest} nearest" if nearest else ", all reps"),
        "variables": len(matrix.c),
        "pyomo build s": pyomo_build,
        "to arrays s": matrix_compile,
        "solve via Pyomo s": via_pyomo.solve_seconds,
        "status": via_pyomo.status,
        "gap": via_pyomo.gap,
        "solve via highspy s": via_matrix.solve_seconds,
        "gap (highspy)": via_matrix.gap,
    }


def pmed_row(name: str) -> dict[str, object]:
    path = DATA / "orlib-pmed" / f"{name}.txt"
    inputs = read_orlib_pmed(path.read_text(), path.name)
    n, p = len(inputs.units), len(inputs.reps)
    design = design_territories(inputs, DesignSpec(), SolveOptions(rel_gap=0.0, time_limit=300))
    return {
        "instance": f"{name} (n={n}, p={p})",
        "variables": n * n + n,
        "pyomo build s": design.result.build_seconds,
        "solve via Pyomo s": design.result.solve_seconds,
        "status": design.result.status,
        "gap": design.result.gap,
        "objective": design.compactness,
        "published optimum": PMED_OPTIMA[name],
    }


def main() -> None:
    if not COUNTIES.exists():
        sys.exit(f"needs the shared data folder: {COUNTIES}")
    rows = [territory_rows(2000, 50, None), territory_rows(2000, 50, 10), territory_rows(10000, 100, 10)]
    rows += [pmed_row(name) for name in PMED_OPTIMA]
    table = pd.DataFrame(rows).set_index("instance")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:,.4g}".format):
        print(table.to_string())


if __name__ == "__main__":
    main()
