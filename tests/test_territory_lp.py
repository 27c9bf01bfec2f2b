"""The array model's machinery against LP duality: column generation reaches the LP over every pair, the
Lagrangian bound equals it there and never exceeds an integer optimum, a warm start is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizers import territory_lp as lp
from optimizers.solve import SolveOptions, solve
from optimizers.territories import Balance, DesignSpec, _assignment_data, _problem
from optimizers.territory_inputs import TerritoryInputs, haversine_km

COUNTIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "us-county-centers-of-population-2020" / "CenPop2020_Mean_CO.txt"


@pytest.fixture(scope="module")
def data() -> lp.AssignmentData:
    """Texas's 254 counties and 12 reps in the most populous ones, counties per rep balanced within ±10% (20 to 23
    each: population could not be, Harris County alone carries more than two reps' share)."""
    if not COUNTIES.exists():
        pytest.skip(f"real data not available: {COUNTIES}")
    counties = pd.read_csv(COUNTIES)
    rows = counties[counties["STNAME"] == "Texas"].reset_index(drop=True)
    homes = rows.nlargest(12, "POPULATION").index.to_numpy()
    lat, lon = rows["LATITUDE"].to_numpy(), rows["LONGITUDE"].to_numpy()
    units = pd.DataFrame({"counties": 1.0, "lat": lat, "lon": lon, "owner": None, "locked": False},
                         index=pd.Index([str(i) for i in range(len(rows))], name="unit"))
    reps = pd.DataFrame({"weight": 1.0, "lat": lat[homes], "lon": lon[homes], "home_unit": [str(h) for h in homes], "placed": True},
                        index=pd.Index([f"r{k}" for k in range(12)], name="rep"))
    inputs = TerritoryInputs(units, reps, ("counties",), haversine_km(lat[homes][:, None], lon[homes][:, None], lat[None, :], lon[None, :]))
    return _assignment_data(_problem(inputs, DesignSpec(balance=(Balance("counties", 0.1),))))


def every_pair(data: lp.AssignmentData) -> lp._Columns:
    n_reps, n_units = data.shape
    columns = lp._Columns(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    columns.add(np.repeat(np.arange(n_reps), n_units), np.tile(np.arange(n_units), n_reps))
    return columns


def test_column_generation_reaches_the_lp_over_every_pair_and_the_bound_equals_it(data):
    cost = lp.Cost(compactness=1.0)
    full = solve(lp._matrix(data, cost, (), every_pair(data), integer=False), SolveOptions(rel_gap=None))
    columns = lp._first_columns(data)
    assert len(columns.s) < data.shape[0] * data.shape[1]  # the test means something: the start is restricted
    result, rounds, _ = lp._column_generation(data, cost, (), columns, lambda m, o, start=None: solve(m, o, start=start), SolveOptions(), None)
    assert result.status == full.status == "optimal"
    assert result.objective == pytest.approx(full.objective, rel=1e-7)
    bound = lp._lagrangian_bound(data, cost, (), lp._duals(data, (), result.duals))
    assert bound == pytest.approx(full.objective, rel=1e-7)  # strong duality


def test_the_bound_from_any_duals_stays_below_the_integer_optimum(data):
    cost = lp.Cost(compactness=1.0)
    exact = solve(lp._matrix(data, cost, (), every_pair(data), integer=True), SolveOptions(rel_gap=0.0))
    assert exact.status == "optimal"
    rng = np.random.default_rng(3)
    for _ in range(5):  # weak duality holds for every multiplier of the right sign, not only the LP's
        duals = {f.name: rng.normal(0, 1e6, data.shape[0]) for f in data.families}
        row_duals = np.concatenate([np.zeros(data.shape[1])] + [duals[f.name] for f in data.families])
        assert lp._lagrangian_bound(data, cost, (), lp._duals(data, (), row_duals)) <= exact.objective * (1 + 1e-9)


def test_a_warm_start_is_kept_or_bettered(data):
    cost = lp.Cost(compactness=1.0)
    outcome = lp.solve_assignment(data, cost, (), SolveOptions(rel_gap=0.05))
    columns = every_pair(data)
    start = (outcome.chosen[columns.u] == columns.s).astype(float)
    started = solve(lp._matrix(data, cost, (), columns, integer=True), SolveOptions(rel_gap=0.5), start=start)
    assert started.has_solution and started.objective <= outcome.result.objective * (1 + 1e-9)
