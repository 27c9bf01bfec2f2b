"""The repair and local search against what they promise: every unit once, every bound held (recomputed from the
inputs), never costlier than the start, and the whole design exact where brute force knows the optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from optimizers import territory_lp as lp
from optimizers.solve import SolveOptions, solve
from optimizers.territories import Balance, Cap, DesignSpec, _assignment_data, _problem, design_territories
from optimizers.territory_inputs import TerritoryInputs
from optimizers.territory_search import improve, repair, rounded

COMPACT = lp.Cost(compactness=1.0)


def instance(n_units: int, n_reps: int, seed: int, locked: int = 0) -> TerritoryInputs:
    """Units at random points of a unit square with lognormal workloads and potentials, reps at random points;
    ``locked`` units belong to rep 0 and stay there."""
    rng = np.random.default_rng(seed)
    xy, homes = rng.random((n_units, 2)), rng.random((n_reps, 2))
    reps = [f"r{k}" for k in range(n_reps)]
    owner = [reps[0] if i < locked else None for i in range(n_units)]
    units = pd.DataFrame({"workload": rng.lognormal(0, 0.6, n_units), "owner": owner, "locked": np.arange(n_units) < locked},
                         index=pd.Index([f"u{i}" for i in range(n_units)], name="unit"))
    units["potential"] = rng.lognormal(0, 1.0, n_units)
    rep_frame = pd.DataFrame({"weight": 1.0, "home_unit": None, "placed": True}, index=pd.Index(reps, name="rep"))
    distance = np.hypot(homes[:, None, 0] - xy[None, :, 0], homes[:, None, 1] - xy[None, :, 1])
    return TerritoryInputs(units, rep_frame, ("workload", "potential"), distance, distance_source="table")


def lp_pairs(data: lp.AssignmentData) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The LP over every allowed pair (column generation) and its values on its pairs."""
    columns = lp._first_columns(data)
    result, _, _ = lp._column_generation(data, COMPACT, (), columns, lambda m, o, start=None: solve(m, o, start=start), SolveOptions(), None)
    assert result.status == "optimal"
    return (columns.s, columns.u), result.values[: len(columns.s)]


def assert_feasible(inputs: TerritoryInputs, spec: DesignSpec, chosen: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> None:
    """Every unit has one rep among its pairs, locked units their owner, and every bound holds, from the inputs."""
    s, u = pairs
    assert chosen.shape == (len(inputs.units),) and (chosen >= 0).all()
    offered = set(zip(s.tolist(), u.tolist()))
    assert all((int(rep), unit) in offered for unit, rep in enumerate(chosen))
    locked = inputs.units["locked"].to_numpy()
    assert (chosen[locked] == 0).all()
    reps = len(inputs.reps)
    for balance in spec.balance:
        values = inputs.units[balance.attribute].to_numpy()
        share = values.sum() / reps
        loads = np.bincount(chosen, weights=values, minlength=reps)
        assert (loads <= share * (1 + balance.tolerance) * (1 + 1e-9)).all() and (loads >= share * (1 - balance.tolerance) * (1 - 1e-9)).all()
    for cap in spec.caps:
        assert (np.bincount(chosen, weights=inputs.units[cap.attribute].to_numpy(), minlength=reps) <= cap.limit * (1 + 1e-9)).all()


def total(data: lp.AssignmentData, chosen: np.ndarray) -> float:
    return float(data.cost(COMPACT, chosen, np.arange(len(chosen))).sum())


@pytest.mark.parametrize(("n_units", "n_reps", "tolerance", "cap", "locked", "potential"), [
    (400, 8, 0.05, None, 0, None),
    (400, 8, 0.1, 1.04, 40, None),  # a cap 4% above the balanced share binds before the balance's upper bound
    (1000, 25, 0.02, None, 0, None),
    (1000, 25, 0.1, None, 0, 0.2),  # two attributes balanced at once
])
def test_the_repaired_rounding_assigns_every_unit_once_within_every_bound_and_improving_never_costs_more(n_units, n_reps, tolerance, cap, locked, potential):
    inputs = instance(n_units, n_reps, seed=n_units + n_reps, locked=locked)
    caps = (Cap("workload", inputs.units["workload"].sum() / n_reps * cap),) if cap else ()
    balance = (Balance("workload", tolerance),) + ((Balance("potential", potential),) if potential else ())
    spec = DesignSpec(balance=balance, caps=caps, weight="workload")
    data = _assignment_data(_problem(inputs, spec))
    pairs, values = lp_pairs(data)
    start = rounded(pairs, values, n_units)
    repaired = repair(data, COMPACT, (), start, pairs)
    assert repaired is not None
    assert_feasible(inputs, spec, repaired, pairs)
    better = improve(data, COMPACT, (), repaired, pairs)
    assert_feasible(inputs, spec, better, pairs)
    assert total(data, better) <= total(data, repaired) * (1 + 1e-12)
    assert repair(data, COMPACT, (), better, pairs) is not None
    assert (repair(data, COMPACT, (), better, pairs) == better).all()  # a feasible start is left as it is


def test_improving_a_random_feasible_design_never_costs_more_and_keeps_every_bound():
    inputs = instance(300, 6, seed=5)
    spec = DesignSpec(balance=(Balance("workload", 0.1),))
    data = _assignment_data(_problem(inputs, spec))
    every = (np.repeat(np.arange(6), 300), np.tile(np.arange(300), 6))
    rng = np.random.default_rng(1)
    for _ in range(3):
        start = repair(data, COMPACT, (), rng.integers(0, 6, 300), every)
        assert start is not None
        better = improve(data, COMPACT, (), start, every)
        assert_feasible(inputs, spec, better, every)
        assert total(data, better) < total(data, start)  # a random start always leaves something to gain


def test_a_rounding_that_only_a_swap_can_repair_is_refused_not_returned_broken():
    """Two reps must carry 3 each: r0 holds 2 + 2, r1 holds 1 + 1. Every single move keeps the total violation;
    only a swap (2 for 1) balances, so the repair says it cannot and the design still finds the swap."""
    units = pd.DataFrame({"workload": [2.0, 2.0, 1.0, 1.0], "owner": None, "locked": False}, index=pd.Index(list("abcd"), name="unit"))
    reps = pd.DataFrame({"weight": 1.0, "home_unit": None, "placed": True}, index=pd.Index(["r0", "r1"], name="rep"))
    inputs = TerritoryInputs(units, reps, ("workload",), np.array([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]), distance_source="table")
    spec = DesignSpec(balance=(Balance("workload", 0.0),))
    data = _assignment_data(_problem(inputs, spec))
    every = (np.repeat(np.arange(2), 4), np.tile(np.arange(4), 2))
    assert repair(data, COMPACT, (), np.array([0, 0, 1, 1]), every) is None
    design = design_territories(inputs, spec, SolveOptions(rel_gap=0.0))
    assert design.loads["workload"].tolist() == [3.0, 3.0] and design.compactness == pytest.approx(2.0)


@pytest.mark.parametrize("seed", range(6))
def test_designs_of_small_instances_equal_the_brute_force_optimum(seed):
    """9 units, 3 reps, balance ±25%: every one of the 3⁹ assignments checked."""
    inputs = instance(9, 3, seed=seed)
    spec = DesignSpec(balance=(Balance("workload", 0.25),), weight="workload")
    workload = inputs.units["workload"].to_numpy()
    share = workload.sum() / 3
    best = np.inf
    for assignment in itertools.product(range(3), repeat=9):
        chosen = np.array(assignment)
        loads = np.bincount(chosen, weights=workload, minlength=3)
        if (np.abs(loads - share) <= 0.25 * share * (1 + 1e-12)).all():
            best = min(best, float((inputs.distance[chosen, np.arange(9)] * workload).sum()))
    if not np.isfinite(best):
        pytest.skip("no balanced assignment at this seed")
    design = design_territories(inputs, spec, SolveOptions(rel_gap=0.0))
    assert design.result.status == "optimal"
    assert design.compactness == pytest.approx(best, rel=1e-9)


def test_a_lexicographic_stage_starts_from_the_design_before_it_and_is_never_worse():
    """Compactness first, then disruption holding it: the second stage's design moves no more units than the first
    stage's design does, and keeps its compactness (within the hold's tolerance)."""
    inputs = instance(600, 10, seed=3)
    inputs.units["owner"] = np.random.default_rng(3).choice(list(inputs.reps.index), 600)
    options = SolveOptions(rel_gap=0.01, time_limit=30)
    compact = DesignSpec(balance=(Balance("workload", 0.1),), weight="workload")
    first = design_territories(inputs, compact, options)
    both = design_territories(inputs, DesignSpec(balance=compact.balance, weight="workload", objective=("compactness", "disruption")), options)
    assert both.solves[0].objective == pytest.approx(first.compactness)
    assert both.compactness <= first.compactness * (1 + 1e-6)
    assert both.disruption <= first.disruption
    assert both.search[1]["from_start_objective"] <= first.disruption
