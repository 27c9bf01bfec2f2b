"""Territory design: assign units (accounts, counties…) to reps, balanced, compact and minimally disruptive.

The model (a Pyomo MIP solved through ``optimizers.solve``) gives each unit exactly one rep among its options (all
reps, or its ``nearest`` k plus its current owner). Optional parts, each its own ``add_*`` step: balance of one or
more attributes within a tolerance of each rep's share (total × capacity weight / sum of weights), caps per rep,
locked units, contiguity over an adjacency list, and, when no rep is placed, the choice of ``p`` centres among the
units (the p-median). Objectives: compactness (distance, optionally weighted by an attribute), disruption (an
attribute summed over units that change owner), a weighted mix of both normalised, or one after the other
(lexicographic). A design comes back with its loads, why each moved unit moved, and the solver's report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np
import pandas as pd
import pyomo.environ as pyo
from scipy.optimize import linear_sum_assignment

from optimizers.solve import SolveOptions, SolveResult, solve
from optimizers.territory_inputs import TerritoryInputs
from optimizers.territory_lp import AssignmentData, Cost, Held, RowFamily, solve_assignment

OBJECTIVES = ("compactness", "disruption", "weighted")
#: Relative slack added to a lexicographic stage's bound so that the next stage stays numerically feasible.
LEX_TOLERANCE = 1e-7


class DesignError(ValueError):
    """A design that cannot be asked for with these inputs (an unknown attribute, a missing adjacency…)."""


class DesignInfeasible(ValueError):
    """No assignment meets the constraints; the message says which units, reps and attributes conflict."""

    def __init__(self, message: str, result: SolveResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Balance:
    """Each rep's total of ``attribute`` within ±``tolerance`` (a fraction) of its share."""

    attribute: str
    tolerance: float


@dataclass(frozen=True)
class Cap:
    """Each rep's total of ``attribute`` at most ``limit``."""

    attribute: str
    limit: float


@dataclass(frozen=True)
class DesignSpec:
    """What a design must satisfy and what it optimises.

    ``objective``: one of ``OBJECTIVES``, or several names applied lexicographically (the first optimised, then
    the next with the first held at its optimum × (1 + ``lex_slack``)). ``weight``: attribute weighting each
    unit's distance in compactness. ``disruption_attribute``: summed over units that change owner (default: count
    units). ``disruption_share``: for ``weighted``, the share of disruption against compactness, each normalised.
    ``nearest``: offer each unit only its k nearest reps (plus its current owner), for large instances.
    """

    balance: tuple[Balance, ...] = ()
    caps: tuple[Cap, ...] = ()
    objective: tuple[str, ...] = ("compactness",)
    weight: str | None = None
    disruption_attribute: str | None = None
    disruption_share: float = 0.5
    contiguity: bool = False
    nearest: int | None = None
    lex_slack: float = 0.0

    @property
    def attributes(self) -> tuple[str, ...]:
        """Every unit attribute the spec reads, in first-use order."""
        names = [b.attribute for b in self.balance] + [c.attribute for c in self.caps]
        names += [name for name in (self.weight, self.disruption_attribute) if name]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Design:
    """A solved design.

    ``assignment``: unit → rep. ``centres``: rep → centre unit when the design placed them (else None).
    ``loads``: rep × attribute totals. ``moves``: per unit, previous rep, moved flag and the reason.
    ``solves``: one SolveResult per stage (two for a lexicographic objective). ``search``: per stage solved as
    arrays, how the search went (pairs priced, the LP bound, the heuristic's objective).
    """

    assignment: pd.Series
    centres: pd.Series | None
    loads: pd.DataFrame
    moves: pd.DataFrame
    compactness: float
    disruption: float | None
    solves: tuple[SolveResult, ...]
    search: tuple[dict[str, object], ...] = ()

    @property
    def result(self) -> SolveResult:
        return self.solves[-1]


@dataclass(frozen=True)
class _Problem:
    """Inputs and spec as the arrays the model steps index: servers are reps, or candidate centres."""

    inputs: TerritoryInputs
    spec: DesignSpec
    units: list[str]
    servers: list[str]
    distance: np.ndarray  # servers × units
    options: list[list[int]]  # per unit, the server indices it may go to
    owner: list[int | None]  # per unit, the owner's server index (reps mode) or None
    values: dict[str, np.ndarray]  # attribute → per-unit values
    share: dict[str, np.ndarray]  # attribute → per-server share of the total (p-median: per open centre)
    roots: list[int]  # per server, the unit its territory grows from (contiguity)

    @property
    def centres_mode(self) -> bool:
        return self.inputs.place_centres


def design_territories(inputs: TerritoryInputs, spec: DesignSpec, options: SolveOptions = SolveOptions()) -> Design:
    """Solve a design; raises DesignInfeasible (naming units, reps and attributes) when none exists.

    Placed reps without contiguity (the assignment model) are solved as arrays by column generation with a bound
    over every allowed pair (``territory_lp``), which scales to tens of thousands of units; picking centres
    (p-median) and contiguity use the Pyomo model.
    """
    problem = _problem(inputs, spec)
    check_feasibility(problem)
    if problem.centres_mode or spec.contiguity:
        return _design_with_pyomo(problem, options)
    return _design_with_arrays(problem, options)


def _design_with_pyomo(problem: _Problem, options: SolveOptions) -> Design:
    spec = problem.spec
    solves: list[SolveResult] = []
    started = time.perf_counter()
    model = build_model(problem)
    for stage, objective in enumerate(spec.objective):
        if stage:  # a later stage's build: holding the stage before and the new objective
            started = time.perf_counter()
            _hold(model, spec.objective[stage - 1], solves[-1].objective, spec.lex_slack)
        model.objective = pyo.Objective(expr=model.objective_terms[objective], sense=pyo.minimize)
        result = solve(model, options, time.perf_counter() - started)
        solves.append(result)
        _raise_without_solution(problem, result)
    chosen = np.full(len(problem.units), -1)
    for (u, s), var in model.x.items():
        if var.value is not None and var.value > 0.5:
            chosen[u] = s
    return _read_design(problem, chosen, tuple(solves))


def _design_with_arrays(problem: _Problem, options: SolveOptions) -> Design:
    spec = problem.spec
    data = _assignment_data(problem)
    solves: list[SolveResult] = []
    held: tuple[Held, ...] = ()
    searches: list[dict[str, object]] = []
    previous = None  # a later stage starts from the stage before's design: it meets every row, the new hold too
    for stage, objective in enumerate(spec.objective):
        if stage:
            reached = solves[-1].objective
            bound = reached * (1 + spec.lex_slack) + LEX_TOLERANCE * max(1.0, abs(reached))
            held += (Held(f"hold_{spec.objective[stage - 1]}", _cost(problem, spec.objective[stage - 1]), bound),)
        outcome = solve_assignment(data, _cost(problem, objective), held, options, previous)
        previous = outcome.chosen
        solves.append(outcome.result)
        _raise_without_solution(problem, outcome.result)
        searches.append(outcome.search)
    return _read_design(problem, outcome.chosen, tuple(solves), outcome.duals, tuple(searches))


def _raise_without_solution(problem: _Problem, result: SolveResult) -> None:
    if result.status == "infeasible":
        raise DesignInfeasible(_infeasibility_message(problem, result), result)
    if not result.has_solution:
        raise DesignInfeasible(_no_solution_message(result), result)


def _assignment_data(problem: _Problem) -> AssignmentData:
    """The problem as the array model's data: distances, weights, owners, and per-rep rows for balance and caps."""
    spec, n_reps = problem.spec, len(problem.servers)
    families = []
    for balance in spec.balance:
        share = problem.share[balance.attribute]
        if not (share > 0).all():
            continue  # an attribute that is zero everywhere balances itself
        name = _component(balance.attribute)
        values, scale = problem.values[balance.attribute], 1.0 / share
        families.append(RowFamily(f"balance_upper_{name}", values, scale, np.full(n_reps, -np.inf), np.full(n_reps, 1 + balance.tolerance)))
        families.append(RowFamily(f"balance_lower_{name}", values, scale, np.full(n_reps, 1 - balance.tolerance), np.full(n_reps, np.inf)))
    for cap in spec.caps:
        families.append(RowFamily(f"cap_{_component(cap.attribute)}", problem.values[cap.attribute], np.ones(n_reps), np.full(n_reps, -np.inf), np.full(n_reps, cap.limit)))
    locked = problem.inputs.units["locked"].to_numpy(dtype=bool)
    owner = np.array([-1 if o is None else o for o in problem.owner])
    allowed = None
    if spec.nearest is not None and spec.nearest < n_reps:
        units = np.concatenate([np.full(len(servers), u) for u, servers in enumerate(problem.options)])
        allowed = (np.concatenate([np.asarray(servers) for servers in problem.options]).astype(np.int64), units.astype(np.int64))
    weight = problem.values[spec.weight] if spec.weight else np.ones(len(problem.units))
    return AssignmentData(problem.distance, weight, _disruption_cost(problem), owner, locked, tuple(families), allowed)


def _cost(problem: _Problem, objective: str) -> Cost:
    """An objective as the array model's linear cost; ``weighted`` divides each part by its reference value."""
    if objective == "compactness":
        return Cost(compactness=1.0)
    if objective == "disruption":
        return Cost(disruption=1.0)
    compact_ref, disruption_ref = _references(problem)
    share = problem.spec.disruption_share
    return Cost(compactness=(1 - share) / compact_ref, disruption=share / disruption_ref)


def _references(problem: _Problem) -> tuple[float, float]:
    """What ``weighted`` divides compactness and disruption by: every unit at its nearest server, every unit moved."""
    weight = problem.values[problem.spec.weight] if problem.spec.weight else np.ones(len(problem.units))
    return max(float((weight * problem.distance.min(axis=0)).sum()), 1.0), max(float(_disruption_cost(problem).sum()), 1.0)


def _hold(model: pyo.ConcreteModel, previous: str, reached: float, slack: float) -> None:
    """Keep the previous stage's objective at what it reached (× 1 + slack) and drop its objective."""
    held = reached * (1 + slack) + LEX_TOLERANCE * max(1.0, abs(reached))
    model.add_component(f"hold_{previous}", pyo.Constraint(expr=model.objective_terms[previous] <= held))
    model.del_component("objective")


def _no_solution_message(result: SolveResult) -> str:
    """Why a solve gave no design when the model was not shown infeasible."""
    if result.termination in ("time_limit", "iteration_limit", "solution_limit", "interrupted"):
        return f"no design found: the solver stopped ({result.termination}) before finding one; allow more time (--time-limit)"
    return f"no design found: the solver ended with {result.termination} ({result.status}) and no design"


def price_of_balance(
    inputs: TerritoryInputs, spec: DesignSpec, scales: Iterable[float | None] = (None, 2.0, 1.0, 0.5), options: SolveOptions = SolveOptions()
) -> list[dict[str, object]]:
    """The first objective at each tolerance scale (None: no balance), to show what balance costs.

    A scale that takes a tolerance to 1 or beyond (a share of ±100% bounds nothing below) is reported as
    ``skipped``; a design the scale makes impossible as ``infeasible``, with the reason.
    """
    rows = []
    for scale in scales:
        balance = () if scale is None else tuple(replace(b, tolerance=b.tolerance * scale) for b in spec.balance)
        row: dict[str, object] = {"scale": scale, "tolerances": {b.attribute: b.tolerance for b in balance}}
        rows.append(row)
        beyond = [b for b in balance if b.tolerance >= 1]
        if beyond:
            reason = ", ".join(f"{b.attribute} ±{b.tolerance:.0%}" for b in beyond)
            row.update(status="skipped", objective=None, gap=None, reason=f"tolerance {reason} is not below 100%")
            continue
        trial = replace(spec, balance=balance, objective=spec.objective[:1])
        try:
            result = design_territories(inputs, trial, replace(options, explain=False)).result
            row.update(status=result.status, objective=result.objective, gap=result.gap)
        except DesignInfeasible as error:
            row.update(status="infeasible", objective=None, gap=None, reason=str(error))
        except DesignError as error:
            row.update(status="refused", objective=None, gap=None, reason=str(error))
    return rows


def measure_design(inputs: TerritoryInputs, spec: DesignSpec, assignment: pd.Series, centres: pd.Series | None = None) -> dict[str, object]:
    """A design's measures, the same for today's (the units' owners) and a new one: total distance (each unit's
    distance to its rep's home, or centre, times ``spec.weight`` when given, as compactness counts it; None when
    reps have no place), units without a rep, each rep's units and loads against its share, and the balance and
    cap bounds it breaks. ``assignment``: unit → rep (missing: no rep)."""
    units, reps = inputs.units, inputs.reps
    rep_of = assignment.reindex(units.index)
    known = rep_of.notna().to_numpy()
    weight = units[spec.weight].to_numpy(dtype=float) if spec.weight else np.ones(len(units))
    distance = None
    if centres is not None or not inputs.place_centres:
        homes = rep_of[known].map(centres).map({u: i for i, u in enumerate(units.index)}) if centres is not None else rep_of[known].map({r: i for i, r in enumerate(reps.index)})
        distance = float((inputs.distance[homes.to_numpy(dtype=int), np.flatnonzero(known)] * weight[known]).sum())
    shares = (reps["weight"] / reps["weight"].sum()).to_numpy()
    code = pd.Categorical(rep_of, categories=reps.index).codes
    counts = np.bincount(code[known], minlength=len(reps))
    totals = {a: np.bincount(code[known], weights=units[a].to_numpy(dtype=float)[known], minlength=len(reps)) for a in inputs.attributes}
    tolerance = {b.attribute: b.tolerance for b in spec.balance}
    caps = {c.attribute: c.limit for c in spec.caps}
    loads: dict[str, dict[str, object]] = {}
    violations: list[dict[str, object]] = []
    for r, rep in enumerate(reps.index):
        entry: dict[str, object] = {"units": int(counts[r])}
        if centres is not None:
            entry["centre"] = centres.get(rep)
        for attribute in inputs.attributes:
            load, share = float(totals[attribute][r]), float(units[attribute].sum() * shares[r])
            ratio = load / share if share else None
            entry[attribute] = {"load": load, "share": share, "ratio": ratio}
            if attribute in tolerance and ratio is not None and abs(ratio - 1) > tolerance[attribute] * (1 + 1e-9) + 1e-12:
                bound = 1 + tolerance[attribute] if ratio > 1 else 1 - tolerance[attribute]
                violations.append({"rep": rep, "attribute": attribute, "bound": "upper" if ratio > 1 else "lower", "limit": share * bound, "load": load, "ratio": ratio})
            if attribute in caps and load > caps[attribute] * (1 + 1e-9):
                violations.append({"rep": rep, "attribute": attribute, "bound": "cap", "limit": caps[attribute], "load": load, "ratio": None})
        loads[rep] = entry
    return {
        "total_distance": distance,
        "units_without_rep": int((~known).sum()),
        "rep_loads": loads,
        "balance_violations": violations,
    }


# ----- the problem in arrays -----


def _problem(inputs: TerritoryInputs, spec: DesignSpec) -> _Problem:
    units_frame, reps_frame = inputs.units, inputs.reps
    for name in spec.attributes:
        if name not in inputs.attributes:
            raise DesignError(f"unknown attribute {name!r}; the units were read with {list(inputs.attributes)}")
    for name in spec.objective:
        if name not in OBJECTIVES:
            raise DesignError(f"unknown objective {name!r}; expected {', '.join(OBJECTIVES)} or a comma-separated order")
    for b in spec.balance:
        if not 0 <= b.tolerance < 1:
            raise DesignError(f"balance {b.attribute}: tolerance {b.tolerance} must be in [0, 1)")
    units = list(units_frame.index)
    has_owners = units_frame["owner"].notna().any()
    if ("disruption" in spec.objective or "weighted" in spec.objective) and not has_owners:
        raise DesignError("a disruption objective needs current owners: add an 'owner' column to the units")
    if spec.contiguity and not inputs.adjacency:
        raise DesignError("contiguity needs an adjacency list (--adjacency)")
    if inputs.place_centres:
        if units_frame["locked"].any():
            raise DesignError("locked units need placed reps: give each rep a home_unit or lat/lon")
        if reps_frame["weight"].nunique() > 1:
            raise DesignError("capacity weights need placed reps: when the design picks centres every rep's share is equal")
        if "disruption" in spec.objective or "weighted" in spec.objective:
            raise DesignError("disruption is measured against placed reps: give each rep a home_unit or lat/lon")
        servers = units
        owner: list[int | None] = [None] * len(units)
    else:
        servers = list(reps_frame.index)
        index = {rep: i for i, rep in enumerate(servers)}
        owner = [index[o] if isinstance(o, str) else None for o in units_frame["owner"]]
    distance = inputs.distance
    values = {name: units_frame[name].to_numpy(dtype=float) for name in inputs.attributes}
    weights = reps_frame["weight"].to_numpy(dtype=float)
    share = {}
    for name, column in values.items():
        total = column.sum()
        share[name] = np.full(len(servers), total / len(reps_frame)) if inputs.place_centres else total * weights / weights.sum()
    options = _options(distance, owner, units_frame["locked"].to_numpy(dtype=bool), spec.nearest)
    roots = [servers.index(s) if inputs.place_centres else _root(reps_frame, s, units, distance[i]) for i, s in enumerate(servers)]
    return _Problem(inputs, spec, units, servers, distance, options, owner, values, share, roots)


def _options(distance: np.ndarray, owner: list[int | None], locked: np.ndarray, nearest: int | None) -> list[list[int]]:
    """Per unit, the servers it may be assigned to: its owner when locked, else all, or the k nearest plus its owner."""
    n_servers, n_units = distance.shape
    if nearest is None or nearest >= n_servers:
        every = list(range(n_servers))
        return [[owner[u]] if locked[u] else every for u in range(n_units)]
    closest = np.argpartition(distance, nearest - 1, axis=0)[:nearest].T
    return [[owner[u]] if locked[u] else sorted(set(closest[u].tolist()) | ({owner[u]} if owner[u] is not None else set())) for u in range(n_units)]


def _root(reps: pd.DataFrame, rep: str, units: list[str], distance_row: np.ndarray) -> int:
    """The unit a rep's territory grows from: its home unit, else the unit nearest its home."""
    home = reps.at[rep, "home_unit"]
    return units.index(home) if isinstance(home, str) else int(np.argmin(distance_row))


def _bounds(problem: _Problem, balance: Balance) -> tuple[np.ndarray, np.ndarray]:
    share = problem.share[balance.attribute]
    return share * (1 - balance.tolerance), share * (1 + balance.tolerance)


# ----- the model, step by step -----


def build_model(problem: _Problem) -> pyo.ConcreteModel:
    """The territory MIP: a pure function of the problem, one ``add_*`` step per part."""
    model = pyo.ConcreteModel(name="territories")
    add_assignment(model, problem)
    if problem.centres_mode:
        add_centres(model, problem)
    for balance in problem.spec.balance:
        add_balance(model, problem, balance)
    for cap in problem.spec.caps:
        add_cap(model, problem, cap)
    if problem.spec.contiguity:
        add_contiguity(model, problem)
    add_objective_terms(model, problem)
    return model


def add_assignment(model: pyo.ConcreteModel, problem: _Problem) -> None:
    """x[u, s] = 1 when unit u goes to server s; each unit to exactly one of its options."""
    pairs = [(u, s) for u, servers in enumerate(problem.options) for s in servers]
    model.U = pyo.Set(initialize=range(len(problem.units)))
    model.S = pyo.Set(initialize=range(len(problem.servers)))
    model.P = pyo.Set(dimen=2, initialize=pairs, ordered=False)
    model.x = pyo.Var(model.P, domain=pyo.Binary)
    model.units_of = {s: [] for s in model.S}
    for u, s in pairs:
        model.units_of[s].append(u)
    model.assign = pyo.Constraint(model.U, rule=lambda m, u: pyo.quicksum(m.x[u, s] for s in problem.options[u]) == 1)


def add_centres(model: pyo.ConcreteModel, problem: _Problem) -> None:
    """p-median: open exactly one centre per rep; a unit only goes to an open centre."""
    model.y = pyo.Var(model.S, domain=pyo.Binary)
    model.open = pyo.Constraint(model.P, rule=lambda m, u, s: m.x[u, s] <= m.y[s])
    model.centres = pyo.Constraint(expr=pyo.quicksum(model.y[s] for s in model.S) == len(problem.inputs.reps))


def _load(model: pyo.ConcreteModel, problem: _Problem, attribute: str, s: int, scale: float = 1.0) -> pyo.Expression:
    """Server s's total of the attribute, divided by ``scale`` (balance rows are kept near 1 for HiGHS)."""
    values = problem.values[attribute] / scale
    return pyo.quicksum(values[u] * model.x[u, s] for u in model.units_of[s] if values[u])


def _row(relation: object) -> object:
    """A rule's relation as Pyomo takes it: a server with no candidate unit carrying the attribute has a constant
    load, so its relation is a plain bool, which Pyomo wants as ``Constraint.Feasible`` or ``Infeasible``
    (``check_feasibility`` names the infeasible ones before any model is built)."""
    if isinstance(relation, (bool, np.bool_)):
        return pyo.Constraint.Feasible if relation else pyo.Constraint.Infeasible
    return relation


def _scaled(model: pyo.ConcreteModel, problem: _Problem, bound: float, s: int) -> object:
    """A per-server bound: constant for a placed rep, switched on by y[s] for a candidate centre."""
    return bound * model.y[s] if problem.centres_mode else bound


def add_balance(model: pyo.ConcreteModel, problem: _Problem, balance: Balance) -> None:
    """Each server's load of the attribute within ±tolerance of its share, written as load / share in 1 ± tolerance."""
    share, tolerance = problem.share[balance.attribute], balance.tolerance
    name = _component(balance.attribute)
    skip = pyo.Constraint.Skip  # an attribute that is zero everywhere balances itself
    model.add_component(f"balance_upper_{name}", pyo.Constraint(
        model.S, rule=lambda m, s: _row(_load(m, problem, balance.attribute, s, share[s]) <= _scaled(m, problem, 1 + tolerance, s)) if share[s] > 0 else skip))
    model.add_component(f"balance_lower_{name}", pyo.Constraint(
        model.S, rule=lambda m, s: _row(_load(m, problem, balance.attribute, s, share[s]) >= _scaled(m, problem, 1 - tolerance, s)) if share[s] > 0 else skip))


def add_cap(model: pyo.ConcreteModel, problem: _Problem, cap: Cap) -> None:
    """Each server's load of the attribute at most the cap."""
    model.add_component(f"cap_{_component(cap.attribute)}", pyo.Constraint(
        model.S, rule=lambda m, s: _row(_load(m, problem, cap.attribute, s) <= cap.limit)))


def add_contiguity(model: pyo.ConcreteModel, problem: _Problem) -> None:
    """A unit joins a territory only next to a unit of it nearer the territory's root.

    Following nearer neighbours from any unit ends at the root, so every territory is connected (a sufficient
    condition: it rules out some connected shapes that wind away from their root, never a disconnected one).
    """
    index = {unit: i for i, unit in enumerate(problem.units)}
    neighbours: dict[int, set[int]] = {u: set() for u in range(len(problem.units))}
    for a, b in problem.inputs.adjacency:
        neighbours[index[a]].add(index[b])
        neighbours[index[b]].add(index[a])
    root_distance = {s: _graph_order(problem, s) for s in model.S}
    allowed = set(model.P)

    def rule(m: pyo.ConcreteModel, u: int, s: int) -> object:
        if u == problem.roots[s]:
            return pyo.Constraint.Skip
        nearer = [v for v in neighbours[u] if (v, s) in allowed and root_distance[s][v] < root_distance[s][u]]
        return m.x[u, s] <= pyo.quicksum(m.x[v, s] for v in nearer) if nearer else m.x[u, s] == 0

    model.contiguity = pyo.Constraint(model.P, rule=rule)


def _graph_order(problem: _Problem, s: int) -> np.ndarray:
    """Distance from a server to each unit, ties broken by unit order so that 'nearer' is strict."""
    row = problem.distance[s].astype(float)
    return row + np.arange(len(row)) * 1e-9 * max(1.0, float(np.nanmax(row)))


def add_objective_terms(model: pyo.ConcreteModel, problem: _Problem) -> None:
    """The objective expressions: compactness, disruption and their normalised mix, selectable by name."""
    spec = problem.spec
    weight = problem.values[spec.weight] if spec.weight else np.ones(len(problem.units))
    compactness = pyo.quicksum(problem.distance[s, u] * weight[u] * model.x[u, s] for u, s in model.P if problem.distance[s, u] * weight[u])
    terms = {"compactness": compactness}
    if any(o is not None for o in problem.owner):
        cost = _disruption_cost(problem)
        disruption = float(cost.sum()) - pyo.quicksum(cost[u] * model.x[u, o] for u, o in enumerate(problem.owner) if o is not None)
        compact_ref, disruption_ref = _references(problem)
        terms["disruption"] = disruption
        terms["weighted"] = (1 - spec.disruption_share) * compactness / compact_ref + spec.disruption_share * disruption / disruption_ref
    model.objective_terms = terms


def _disruption_cost(problem: _Problem) -> np.ndarray:
    """Per unit, what moving it away from its owner costs: the disruption attribute, or 1; 0 without an owner."""
    base = problem.values[problem.spec.disruption_attribute] if problem.spec.disruption_attribute else np.ones(len(problem.units))
    return np.where([o is not None for o in problem.owner], base, 0.0)


def _component(attribute: str) -> str:
    """An attribute name usable in a Pyomo component name."""
    return "".join(ch if ch.isalnum() else "_" for ch in attribute)


# ----- feasibility in the user's terms -----


def check_feasibility(problem: _Problem) -> None:
    """Catch the conflicts a person can fix before any solve: a unit too heavy for every rep, locked overloads,
    a rep whose candidate units cannot reach its balance lower bound."""
    messages = _unreachable_lower_bounds(problem)
    units = problem.inputs.units
    limits = [(b.attribute, _bounds(problem, b)[1], f"its share +{b.tolerance:.0%}") for b in problem.spec.balance]
    limits += [(c.attribute, np.full(len(problem.servers), c.limit), "the cap") for c in problem.spec.caps]
    for attribute, upper, what in limits:
        values = problem.values[attribute]
        for u in np.flatnonzero(values > upper.min() * (1 + 1e-9)):  # a lighter unit fits every rep
            unit = problem.units[u]
            reachable = upper[problem.options[u]]
            if values[u] > reachable.max() * (1 + 1e-9):
                best = problem.options[u][int(np.argmax(reachable))]
                need = ""
                if what.startswith("its share"):
                    need = f"; a tolerance of at least ±{values[u] / problem.share[attribute][best] - 1:.0%} could hold it"
                messages.append(
                    f"unit {unit!r}: {attribute} {values[u]:,.6g} is above every rep's upper bound "
                    f"(largest {reachable.max():,.6g}, {what}){need}"
                )
        if not problem.centres_mode:
            locked = np.flatnonzero(units["locked"].to_numpy())
            owners = np.array([problem.owner[u] for u in locked], dtype=int)
            carried = np.bincount(owners, weights=values[locked], minlength=len(problem.servers))
            for s in np.flatnonzero(carried > upper * (1 + 1e-9)):
                mine = locked[owners == s]
                names = ", ".join(repr(problem.units[u]) for u in mine[:5]) + (" …" if len(mine) > 5 else "")
                messages.append(f"rep {problem.servers[s]!r}: locked units {names} carry {attribute} {carried[s]:,.6g}, above {what} {upper[s]:,.6g}")
    if messages:
        raise DesignInfeasible("no balanced design exists: " + "; ".join(messages))


def _unreachable_lower_bounds(problem: _Problem) -> list[str]:
    """Reps whose candidate units (offered to them by ``nearest`` and not locked to another rep) carry less of a
    balanced attribute than the rep's lower bound. Candidate centres need no such check: one may stay closed."""
    if problem.centres_mode:
        return []
    locked = problem.inputs.units["locked"].to_numpy()
    n_servers = len(problem.servers)
    everywhere = np.array([len(servers) == n_servers for servers in problem.options])  # locked units: their owner only
    offered = np.zeros(n_servers, dtype=bool)
    offered[:] = everywhere.any()
    reach = {b.attribute: np.full(n_servers, problem.values[b.attribute][everywhere].sum()) for b in problem.spec.balance}
    for u in np.flatnonzero(~everywhere):
        offered[problem.options[u]] = True
        for attribute, total in reach.items():
            total[problem.options[u]] += problem.values[attribute][u]
    nearest = problem.spec.nearest
    restricted = nearest is not None and nearest < len(problem.servers)
    messages = []
    for s, rep in enumerate(problem.servers):
        if not offered[s]:
            if problem.spec.balance:
                messages.append(f"rep {rep!r} is no unit's nearest {nearest} (nor any unit's owner), so it can get no units; raise --nearest")
            continue
        for balance in problem.spec.balance:
            lower = _bounds(problem, balance)[0][s]
            if reach[balance.attribute][s] < lower * (1 - 1e-9):
                remedies = (["raise --nearest"] if restricted else []) + (["unlock units"] if locked.any() else [])
                remedies.append(f"loosen --balance {balance.attribute}")
                messages.append(
                    f"rep {rep!r} can reach at most {reach[balance.attribute][s]:,.6g} of {balance.attribute} from its candidate units, "
                    f"below its lower bound {lower:,.6g} (its share −{balance.tolerance:.0%}): {' or '.join(remedies)}"
                )
    return messages


def _infeasibility_message(problem: _Problem, result: SolveResult) -> str:
    """The solver's conflicting constraints, in words about units, reps and attributes."""
    if result.infeasibility is None:
        return "no design meets the constraints"
    by_family: dict[str, list[str]] = {}
    for name in result.infeasibility.constraints:
        by_family.setdefault(name.split("[", 1)[0], []).append(_readable(problem, name))
    parts = []
    for lines in by_family.values():
        parts.extend(lines[:3])
        if len(lines) > 3:
            parts.append(f"and {len(lines) - 3} more like these")
    return f"no design meets the constraints; these cannot all hold ({result.infeasibility.method}): " + "; ".join(parts)


def _readable(problem: _Problem, name: str) -> str:
    family, _, index = name.partition("[")
    keys = [int(k) for k in index.rstrip("]").split(",") if k.strip().lstrip("-").isdigit()]
    unit = (lambda k: repr(problem.units[k]))
    server = (lambda k: f"{'centre' if problem.centres_mode else 'rep'} {problem.servers[k]!r}")
    if family == "assign":
        if problem.inputs.units["locked"].iat[keys[0]]:
            return f"locked unit {unit(keys[0])} stays with {problem.servers[problem.owner[keys[0]]]!r}"
        return f"unit {unit(keys[0])} goes to one of its {len(problem.options[keys[0]])} allowed reps"
    if family == "contiguity":
        return f"unit {unit(keys[0])} joins {server(keys[1])} only next to its territory"
    for prefix, sign in (("balance_upper_", 1), ("balance_lower_", -1), ("cap_", 0)):
        if family.startswith(prefix):
            attribute = next(a for a in problem.inputs.attributes if _component(a) == family[len(prefix):])
            if not sign:
                limit = next(c.limit for c in problem.spec.caps if c.attribute == attribute)
                return f"{server(keys[0])} carries {attribute} at most {limit:,.6g} (the cap)"
            balance = next(b for b in problem.spec.balance if b.attribute == attribute)
            bound = _bounds(problem, balance)[sign > 0][keys[0]]
            word, mark = ("at most", "+") if sign > 0 else ("at least", "−")
            return f"{server(keys[0])} carries {attribute} {word} {bound:,.6g} (its share {mark}{balance.tolerance:.0%})"
    return name


# ----- reading the solution back, in one place -----


def _read_design(
    problem: _Problem, chosen: np.ndarray, solves: tuple[SolveResult, ...], duals: dict[str, np.ndarray] | None = None, search: tuple[dict, ...] = ()
) -> Design:
    reps = list(problem.inputs.reps.index)
    centres = None
    if problem.centres_mode:
        open_centres = sorted({int(s) for s in chosen})
        rep_of_centre = _label_centres(problem, chosen, open_centres)
        centres = pd.Series({rep_of_centre[c]: problem.units[c] for c in open_centres}, name="centre").reindex(reps)
        server_of_rep = {rep_of_centre[c]: c for c in open_centres}
        rep_names = np.array([rep_of_centre[s] for s in chosen], dtype=object)
    else:
        server_of_rep = {rep: i for i, rep in enumerate(reps)}
        rep_names = np.array([reps[s] for s in chosen], dtype=object)
    assignment = pd.Series(rep_names, index=pd.Index(problem.units, name="unit"), name="rep")
    loads = pd.DataFrame({a: pd.Series(problem.values[a], index=assignment.index).groupby(assignment).sum() for a in problem.inputs.attributes}, index=pd.Index(reps, name="rep")).fillna(0.0)
    weight = problem.values[problem.spec.weight] if problem.spec.weight else np.ones(len(problem.units))
    compactness = float((problem.distance[chosen, np.arange(len(chosen))] * weight).sum())
    owners = problem.inputs.units["owner"]
    moved = owners.notna().to_numpy() & (owners.to_numpy() != rep_names)
    disruption = float(_disruption_cost(problem)[moved].sum()) if owners.notna().any() and not problem.centres_mode else None
    moves = explain_moves(problem, assignment, loads, server_of_rep, duals)
    return Design(assignment, centres, loads, moves, compactness, disruption, solves, search)


def _label_centres(problem: _Problem, chosen: np.ndarray, open_centres: list[int]) -> dict[int, str]:
    """Give each open centre a rep: the one that keeps most of its current units, else in order."""
    reps = list(problem.inputs.reps.index)
    owners = problem.inputs.units["owner"].to_numpy()
    keep = np.zeros((len(open_centres), len(reps)))
    position = {c: i for i, c in enumerate(open_centres)}
    rep_index = {rep: j for j, rep in enumerate(reps)}
    for u, s in enumerate(chosen):
        if isinstance(owners[u], str):
            keep[position[s], rep_index[owners[u]]] += 1
    rows, cols = linear_sum_assignment(-keep)
    return {open_centres[i]: reps[j] for i, j in zip(rows, cols)}


def explain_moves(
    problem: _Problem, assignment: pd.Series, loads: pd.DataFrame, server_of_rep: dict[str, int], duals: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """For each unit: previous rep, whether it moved and why (the constraint or distance that moving back breaks).

    ``duals``: the coupling rows' LP duals by row family (when the design was solved as arrays); a unit moved to a
    farther rep names the balance bounds they show binding."""
    owners = problem.inputs.units["owner"]
    locked = problem.inputs.units["locked"].to_numpy()
    reasons = []
    for u, unit in enumerate(problem.units):
        previous, rep = owners.iat[u], assignment.iat[u]
        if not isinstance(previous, str):
            reasons.append("new: no previous owner")
        elif previous == rep:
            reasons.append("locked" if locked[u] else "")
        else:
            reasons.append(_why_moved(problem, u, previous, rep, loads, server_of_rep, duals or {}))
    previous = owners.where(owners.notna(), "")
    return pd.DataFrame({
        "rep": assignment.to_numpy(),
        "previous_rep": previous.to_numpy(),
        "moved": (previous.to_numpy() != "") & (previous.to_numpy() != assignment.to_numpy()),
        "reason": reasons,
    }, index=assignment.index)


def precise(value: float) -> str:
    """A number with four significant digits and no exponent (``0.03124``, ``12.35``, ``1,234``), so that
    distances that differ are told apart."""
    if value == 0 or not np.isfinite(value):
        return f"{value:g}"
    decimals = max(0, 3 - int(np.floor(np.log10(abs(value)))))
    return f"{value:,.{decimals}f}"


def _distance_unit(problem: _Problem) -> str:
    return " km" if problem.inputs.distance_source == "great-circle km" else ""


def _why_moved(
    problem: _Problem, u: int, previous: str, rep: str, loads: pd.DataFrame, server_of_rep: dict[str, int], duals: dict[str, np.ndarray]
) -> str:
    reasons = []
    back, here = server_of_rep.get(previous), server_of_rep[rep]
    for balance in problem.spec.balance:
        attribute, value = balance.attribute, problem.values[balance.attribute][u]
        share = problem.share[attribute]
        if back is not None and loads.at[previous, attribute] + value > share[back] * (1 + balance.tolerance) * (1 + 1e-9):
            pct = (loads.at[previous, attribute] + value) / share[back]
            reasons.append(f"balance {attribute}: kept, {previous} would carry {pct:.1%} of its share (upper bound {1 + balance.tolerance:.0%})")
        if loads.at[rep, attribute] - value < share[here] * (1 - balance.tolerance) * (1 - 1e-9):
            pct = (loads.at[rep, attribute] - value) / share[here]
            reasons.append(f"balance {attribute}: without it {rep} would carry {pct:.1%} of its share (lower bound {1 - balance.tolerance:.0%})")
    for cap in problem.spec.caps:
        if loads.at[previous, cap.attribute] + problem.values[cap.attribute][u] > cap.limit:
            reasons.append(f"cap {cap.attribute}: kept, {previous} would exceed {cap.limit:,.6g}")
    if back is None:
        reasons.append(f"{previous} has no territory in this design")
        return "; ".join(reasons)
    gain = problem.distance[back, u] - problem.distance[here, u]
    unit = _distance_unit(problem)
    if gain > 0:
        reasons.append(f"compactness: {rep} is {precise(gain)}{unit} nearer")
    elif not reasons:
        bounds = _forcing_bounds(problem, back, here, previous, rep, loads, duals)
        if bounds:
            reasons.append(f"balance: {rep} is {precise(-gain)}{unit} farther, forced by {bounds}: moving it back alone breaks no bound, but the moves that would then keep it cost more")
        else:
            reasons.append(f"chain of moves: {rep} is {precise(-gain)}{unit} farther, but moving it back alone breaks no bound; it makes room elsewhere" + (" or keeps territories contiguous" if problem.spec.contiguity else ""))
    return "; ".join(reasons)


def _forcing_bounds(problem: _Problem, back: int, here: int, previous: str, rep: str, loads: pd.DataFrame, duals: dict[str, np.ndarray]) -> str:
    """The balance bounds behind a move to a farther rep: ``rep``'s lower bounds and ``previous``'s upper bounds that
    the LP's duals show binding; without duals, the tightest of them (the least room left, as a share)."""
    found: list[tuple[float, str]] = []
    for balance in problem.spec.balance:
        attribute, share = balance.attribute, problem.share[balance.attribute]
        name = _component(attribute)
        for server, who, side, bound in ((here, rep, "lower", 1 - balance.tolerance), (back, previous, "upper", 1 + balance.tolerance)):
            ratio = loads.at[who, attribute] / share[server]
            text = f"{who}'s {side} bound on {attribute} ({bound:.0%} of its share; it carries {ratio:.1%})"
            y = duals.get(f"balance_{side}_{name}")
            if y is not None:
                if abs(y[server]) > 1e-9 * max(1.0, float(np.abs(y).max())):
                    found.append((-abs(y[server]), text))
            else:
                found.append((abs(ratio - bound), text))
    if not found:
        return ""
    if not duals:
        return min(found)[1]
    return " and ".join(text for _, text in sorted(found))


