"""A feasible territory design fast, without a MIP: the LP rounded, repaired by the cheapest moves, then improved.

The assignment LP splits few units (a basic solution splits at most one unit per binding row), so giving each unit
its largest LP pair breaks few rows, and each only by about one unit's load (``territory_lp`` rounds an LP whose
bounds it narrowed a little, so that the reps held at a bound keep room to pass units on). ``repair`` moves units,
one at a time, along the move that removes the most violation per unit of cost, until every row holds; ``improve``
then shifts units to a cheaper rep, and swaps pairs of units between two reps, while every row holds, until no
move lowers the cost. Both move units only along the given pairs (the LP's columns: each unit's nearest reps and
the pairs that pricing found useful), and both work on arrays: about 25 s at 50,000 units × 500 reps.

Rows are those of ``territory_lp``: per rep, each family's ``lower ≤ scale · Σ values ≤ upper``; and each held
objective's ``Σ cost ≤ bound`` (a lexicographic stage).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # territory_lp calls this module: the types only, to import without a cycle
    from optimizers.territory_lp import AssignmentData, Cost, Held

#: Relative slack within which a row counts as holding (the LP's own feasibility tolerance is 1e-7).
FEASIBLE = 1e-9
#: Most units a swap round pairs per rep pair, cheapest first (bounds a round's arrays).
SWAP_CANDIDATES = 12


@dataclass
class _Moves:
    """Every move along the pairs: unit ``u`` from its rep ``source`` to ``target``, with what it changes."""

    u: np.ndarray
    source: np.ndarray
    target: np.ndarray
    cost: np.ndarray  # objective change
    rows: list[tuple[np.ndarray, np.ndarray]]  # per family: change at source (negative), change at target
    held: np.ndarray  # held rows × moves: change of each held objective


class _Rows:
    """The rows' activities under an assignment, kept up to date as units move."""

    def __init__(self, data: AssignmentData, held: tuple[Held, ...], chosen: np.ndarray):
        self.data, self.held = data, held
        n_reps = data.shape[0]
        self.loads = [family.scale * np.bincount(chosen, weights=family.values, minlength=n_reps) for family in data.families]
        units = np.arange(len(chosen))
        self.held_totals = np.array([data.cost(row.cost, chosen, units).sum() for row in held])
        self.held_bounds = np.array([row.bound for row in held])

    def excess(self) -> tuple[np.ndarray, np.ndarray]:
        """Per rep, its rows' total violation; per held row, its violation (each relative to its bound's size)."""
        per_rep = sum((_excess(load, family.lower, family.upper) for family, load in zip(self.data.families, self.loads)), np.zeros(self.data.shape[0]))
        return per_rep, _excess(self.held_totals, -np.inf, self.held_bounds)

    def apply(self, moves: _Moves, j: int) -> None:
        for load, (at_source, at_target) in zip(self.loads, moves.rows):
            load[moves.source[j]] += at_source[j]
            load[moves.target[j]] += at_target[j]
        self.held_totals += moves.held[:, j]


def _excess(activity: np.ndarray, lower: np.ndarray | float, upper: np.ndarray | float) -> np.ndarray:
    """How far each activity lies outside its bounds, relative to the bound it breaks (infinite bounds: never)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        above = np.where(np.isfinite(upper), (activity - upper) / np.maximum(np.abs(upper), 1e-12), 0.0)
        below = np.where(np.isfinite(lower), (lower - activity) / np.maximum(np.abs(lower), 1e-12), 0.0)
    return np.maximum(0.0, np.maximum(above, below))


def _moves(data: AssignmentData, cost: Cost, held: tuple[Held, ...], chosen: np.ndarray, s: np.ndarray, u: np.ndarray) -> _Moves:
    """The moves along pairs (s, u) that change a unit's rep."""
    keep = s != chosen[u]
    s, u = s[keep], u[keep]
    source = chosen[u]
    rows = [(-family.scale[source] * family.values[u], family.scale[s] * family.values[u]) for family in data.families]
    held_change = np.array([data.cost(row.cost, s, u) - data.cost(row.cost, source, u) for row in held]).reshape(len(held), len(u))
    return _Moves(u, source, s, data.cost(cost, s, u) - data.cost(cost, source, u), rows, held_change)


def _violation_change(data: AssignmentData, rows: _Rows, moves: _Moves) -> np.ndarray:
    """Per move, how the total violation changes (negative: the move repairs)."""
    change = np.zeros(len(moves.u))
    for family, load, (at_source, at_target) in zip(data.families, rows.loads, moves.rows):
        for rep, delta in ((moves.source, at_source), (moves.target, at_target)):
            lower, upper = family.lower[rep], family.upper[rep]
            change += _excess(load[rep] + delta, lower, upper) - _excess(load[rep], lower, upper)
    for h in range(len(rows.held)):
        total, bound = rows.held_totals[h], rows.held_bounds[h]
        change += _excess(total + moves.held[h], -np.inf, bound) - _excess(np.array([total]), -np.inf, bound)
    return change


def repair(data: AssignmentData, cost: Cost, held: tuple[Held, ...], chosen: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], deadline: float | None = None) -> np.ndarray | None:
    """An assignment meeting every row, from ``chosen`` by single moves along ``pairs`` (rep, unit), each the one
    that removes the most violation per unit of cost added; None when no single move lowers the violation left."""
    chosen = chosen.copy()
    rows = _Rows(data, held, chosen)
    s, u = pairs
    while True:
        per_rep, per_held = rows.excess()
        if per_rep.sum() + per_held.sum() <= FEASIBLE:
            return chosen
        if deadline is not None and time.perf_counter() > deadline:
            return None
        broken = per_rep > FEASIBLE
        touching = slice(None) if (per_held > FEASIBLE).any() else broken[s] | broken[chosen[u]]  # moves that can help
        moves = _moves(data, cost, held, chosen, s[touching], u[touching])
        change = _violation_change(data, rows, moves)
        helps = np.flatnonzero(change < -FEASIBLE)
        if not len(helps):
            return None
        # the cheapest repair per unit of violation removed; a move that also saves cost is cheaper still
        j = helps[np.argmin(moves.cost[helps] / -change[helps])]
        rows.apply(moves, j)
        chosen[moves.u[j]] = moves.target[j]


def _holds(data: AssignmentData, rows: _Rows, moves: _Moves) -> np.ndarray:
    """Per move, whether every row it touches still holds after it."""
    ok = np.ones(len(moves.u), dtype=bool)
    for family, load, (at_source, at_target) in zip(data.families, rows.loads, moves.rows):
        for rep, delta in ((moves.source, at_source), (moves.target, at_target)):
            ok &= _excess(load[rep] + delta, family.lower[rep], family.upper[rep]) <= FEASIBLE
    for h in range(len(rows.held)):
        ok &= _excess(rows.held_totals[h] + moves.held[h], -np.inf, rows.held_bounds[h]) <= FEASIBLE
    return ok


def improve(data: AssignmentData, cost: Cost, held: tuple[Held, ...], chosen: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], deadline: float | None = None) -> np.ndarray:
    """``chosen`` (meeting every row) made cheaper by shifts and swaps along ``pairs`` that keep every row: never
    costlier than it was, and meeting every row still."""
    chosen = chosen.copy()
    while deadline is None or time.perf_counter() < deadline:
        if not _shift_round(data, cost, held, chosen, pairs) and not _swap_round(data, cost, held, chosen, pairs):
            break
    return chosen


def _shift_round(data: AssignmentData, cost: Cost, held: tuple[Held, ...], chosen: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> int:
    """Apply improving single moves that keep every row, cheapest first, at most one per rep per round (so the rows
    each was checked against stay as they were); returns how many were applied."""
    rows = _Rows(data, held, chosen)
    moves = _moves(data, cost, held, chosen, *pairs)
    good = np.flatnonzero((moves.cost < -_tiny(moves.cost)) & _holds(data, rows, moves))
    good = good[np.argsort(moves.cost[good], kind="stable")]
    touched = np.zeros(data.shape[0], dtype=bool)
    applied = 0
    for j in good:
        a, b = moves.source[j], moves.target[j]
        if touched[a] or touched[b] or (len(held) and not _holds_held(rows, moves.held[:, j])):
            continue
        touched[a] = touched[b] = True
        rows.apply(moves, j)
        chosen[moves.u[j]] = b
        applied += 1
    return applied


def _holds_held(rows: _Rows, change: np.ndarray) -> bool:
    return bool((_excess(rows.held_totals + change, -np.inf, rows.held_bounds) <= FEASIBLE).all())


def _tiny(values: np.ndarray) -> float:
    """A change below this is rounding noise, not an improvement."""
    return 1e-12 * max(1.0, float(np.abs(values).max(initial=0.0)))


def _swap_round(data: AssignmentData, cost: Cost, held: tuple[Held, ...], chosen: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> int:
    """Apply improving swaps (unit a from rep s to t, unit b from t to s) that keep every row, cheapest first, at
    most one per rep per round; returns how many were applied. Per ordered rep pair, only the ``SWAP_CANDIDATES``
    cheapest moves are paired."""
    rows = _Rows(data, held, chosen)
    moves = _moves(data, cost, held, chosen, *pairs)
    n_reps = data.shape[0]
    # per ordered rep pair (source, target), its cheapest moves
    key = moves.source.astype(np.int64) * n_reps + moves.target
    order = np.lexsort((moves.cost, key))
    starts = np.r_[0, np.flatnonzero(key[order][1:] != key[order][:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    kept = order[rank < SWAP_CANDIDATES]
    forward = kept[moves.source[kept] < moves.target[kept]]
    backward = kept[moves.source[kept] > moves.target[kept]]
    back_key = moves.target[backward].astype(np.int64) * n_reps + moves.source[backward]  # as its forward pair
    back_order = np.argsort(back_key, kind="stable")
    backward, back_key = backward[back_order], back_key[back_order]
    fwd_key = key[forward]
    first = np.searchsorted(back_key, fwd_key, side="left")
    count = np.searchsorted(back_key, fwd_key, side="right") - first
    a = np.repeat(forward, count)
    b = backward[np.repeat(first, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))]
    gain = moves.cost[a] + moves.cost[b]
    better = gain < -_tiny(gain)
    a, b, gain = a[better], b[better], gain[better]
    ok = np.ones(len(a), dtype=bool)
    for family, load, (at_source, at_target) in zip(data.families, rows.loads, moves.rows):
        s, t = moves.source[a], moves.target[a]
        ok &= _excess(load[s] + at_source[a] + at_target[b], family.lower[s], family.upper[s]) <= FEASIBLE
        ok &= _excess(load[t] + at_target[a] + at_source[b], family.lower[t], family.upper[t]) <= FEASIBLE
    for h in range(len(rows.held)):
        ok &= _excess(rows.held_totals[h] + moves.held[h, a] + moves.held[h, b], -np.inf, rows.held_bounds[h]) <= FEASIBLE
    a, b, gain = a[ok], b[ok], gain[ok]
    touched = np.zeros(n_reps, dtype=bool)
    applied = 0
    for j in np.argsort(gain, kind="stable"):
        s, t = moves.source[a[j]], moves.target[a[j]]
        if touched[s] or touched[t] or (len(held) and not _holds_held(rows, moves.held[:, a[j]] + moves.held[:, b[j]])):
            continue
        touched[s] = touched[t] = True
        for move in (a[j], b[j]):
            rows.apply(moves, move)
            chosen[moves.u[move]] = moves.target[move]
        applied += 1
    return applied


def rounded(pairs: tuple[np.ndarray, np.ndarray], values: np.ndarray, n_units: int) -> np.ndarray:
    """Each unit's pair of largest LP value (its rep index per unit)."""
    s, u = pairs
    order = np.lexsort((-values, u))
    first = order[np.r_[True, u[order][1:] != u[order][:-1]]]
    chosen = np.full(n_units, -1)
    chosen[u[first]] = s[first]
    return chosen
