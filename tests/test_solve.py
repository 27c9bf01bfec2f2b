"""The shared HiGHS wrapper: status as data, no solution loaded without one, infeasibility named by constraint."""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
import pyomo.environ as pyo
import pytest

from optimizers.solve import MatrixModel, SolveOptions, solve


def bins(weights: dict[str, float], limit: dict[str, float]) -> pyo.ConcreteModel:
    """Each item to one bin, each bin's weight within its limit; minimise items in the first bin."""
    model = pyo.ConcreteModel()
    model.I = pyo.Set(initialize=list(weights))
    model.B = pyo.Set(initialize=list(limit))
    model.x = pyo.Var(model.I, model.B, domain=pyo.Binary)
    model.assign = pyo.Constraint(model.I, rule=lambda m, i: sum(m.x[i, b] for b in m.B) == 1)
    model.upper = pyo.Constraint(model.B, rule=lambda m, b: sum(weights[i] * m.x[i, b] for i in m.I) <= limit[b])
    model.objective = pyo.Objective(expr=sum(model.x[i, "b1"] for i in model.I))
    return model


def test_optimal_result_is_data_and_solution_is_loaded():
    model = bins({"a": 10, "b": 1, "c": 2}, {"b1": 13, "b2": 7})
    result = solve(model, SolveOptions(log=True), build_seconds=0.5)
    assert (result.status, result.termination) == ("optimal", "optimal")
    assert result.objective == pytest.approx(1.0) and result.bound == pytest.approx(1.0) and result.gap == pytest.approx(0.0)
    assert result.build_seconds == 0.5 and result.solve_seconds > 0
    assert "HiGHS" in result.log or "MIP" in result.log
    assert pyo.value(model.x["a", "b1"]) == pytest.approx(1.0)  # a (10) only fits the first bin
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "feasible"


def test_integer_infeasibility_is_explained_by_constraint_names():
    # The LP relaxation is feasible (a can be split), so the explanation needs integrality.
    model = bins({"a": 10, "b": 1, "c": 2}, {"b1": 7, "b2": 7})
    result = solve(model)
    assert result.status == "infeasible" and result.objective is None
    assert set(result.infeasibility.constraints) == {"assign[a]", "upper[b1]", "upper[b2]"}
    assert pyo.value(model.x["a", "b1"], exception=False) is None  # nothing loaded
    assert "assign[a]" in result.infeasibility.describe()


def test_linear_infeasibility_uses_the_iis_of_the_relaxation():
    model = bins({"a": 10, "b": 1, "c": 2}, {"b1": 4, "b2": 4})
    result = solve(model)
    assert result.infeasibility.method == "IIS of the linear relaxation"
    assert {"upper[b1]", "upper[b2]"} <= set(result.infeasibility.constraints)


def test_time_limit_without_solution_loads_nothing():
    rng = np.random.default_rng(3)
    n = 60
    cost = rng.integers(1, 100, size=(n, n))
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(n), range(n), domain=pyo.Binary)
    model.y = pyo.Var(range(n), domain=pyo.Binary)
    model.assign = pyo.Constraint(range(n), rule=lambda m, i: sum(m.x[i, j] for j in range(n)) == 1)
    model.open = pyo.Constraint(range(n), range(n), rule=lambda m, i, j: m.x[i, j] <= m.y[j])
    model.count = pyo.Constraint(expr=sum(model.y[j] for j in range(n)) == 7)
    model.objective = pyo.Objective(expr=sum(int(cost[i, j]) * model.x[i, j] for i in range(n) for j in range(n)))
    result = solve(model, SolveOptions(time_limit=0.0))
    # with no time at all HiGHS stops before any heuristic finds a point (checked over repeated runs)
    assert (result.status, result.termination) == ("no_solution", "time_limit")
    assert result.objective is None and result.gap is None
    assert model.x[0, 0].value is None and model.y[0].value is None
    matrix = solve(MatrixModel.from_pyomo(model), SolveOptions(time_limit=0.0))
    assert (matrix.status, matrix.values) == ("no_solution", None)


def split_evenly(n: int) -> pyo.ConcreteModel:
    """n items of 10 into two bins that must each hold 5n ± 0.5: infeasible for odd n, but only with integrality.

    A free variable z with a negative cost makes the relaxation unbounded, so HiGHS's presolve stops at
    "infeasible or unbounded", with presolve or without.
    """
    model = pyo.ConcreteModel()
    model.x = pyo.Var(range(n), range(2), domain=pyo.Binary)
    model.z = pyo.Var(domain=pyo.NonNegativeReals)
    model.assign = pyo.Constraint(range(n), rule=lambda m, i: m.x[i, 0] + m.x[i, 1] == 1)
    model.low = pyo.Constraint(range(2), rule=lambda m, b: sum(10 * m.x[i, b] for i in range(n)) >= 5 * n - 0.5)
    model.high = pyo.Constraint(range(2), rule=lambda m, b: sum(10 * m.x[i, b] for i in range(n)) <= 5 * n + 0.5)
    model.tie = pyo.Constraint(expr=model.z + model.x[0, 0] >= 0)
    model.objective = pyo.Objective(expr=model.x[0, 0] - model.z)
    return model


@pytest.mark.parametrize("as_matrix", [False, True])
def test_infeasible_or_unbounded_is_decided_and_an_infeasible_model_explained(as_matrix):
    model = split_evenly(3)
    result = solve(MatrixModel.from_pyomo(model) if as_matrix else model)
    assert (result.status, result.termination) == ("infeasible", "infeasible")
    names = set(result.infeasibility.constraints)
    assert {"low[0]", "high[0]"} <= names or {"low[1]", "high[1]"} <= names
    assert not any(name.startswith("tie") for name in names)


@pytest.mark.parametrize("as_matrix", [False, True])
def test_an_unbounded_integer_model_is_called_unbounded(as_matrix):
    model = split_evenly(4)  # feasible: two items each
    result = solve(MatrixModel.from_pyomo(model) if as_matrix else model)
    assert (result.status, result.termination) == ("unbounded", "unbounded")
    assert result.infeasibility is None and not result.has_solution


def test_solver_log_is_kept_without_writing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))  # any temporary file would fail here
    matrix = MatrixModel.from_pyomo(bins({"a": 10, "b": 1, "c": 2}, {"b1": 13, "b2": 7}))
    echoed: list[str] = []
    result = solve(matrix, SolveOptions(log=True, echo=echoed.append))
    assert result.status == "optimal" and "Optimal" in result.log
    assert "Optimal" in "".join(echoed)  # handed to the caller as it runs
    assert list(tmp_path.iterdir()) == []


def test_matrix_model_solves_like_the_pyomo_model():
    model = bins({"a": 10, "b": 1, "c": 2}, {"b1": 13, "b2": 7})
    matrix = MatrixModel.from_pyomo(model)
    result = solve(matrix, SolveOptions(log=True))
    assert result.status == "optimal" and result.objective == pytest.approx(1.0)
    values = dict(zip(matrix.col_names, result.values))
    assert values["x[a,b1]"] == pytest.approx(1.0)
    assert result.log and "Optimal" in result.log
