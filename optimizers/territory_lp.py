"""The territory assignment model at scale: arrays, column generation, a Lagrangian bound, a repaired rounding and
a proving MIP.

Each unit goes to one rep; per-rep rows (balance bounds, caps) and held objectives (lexicographic stages) couple
them. Its LP relaxation is nearly integral (a basic solution splits at most one unit per binding row), so:

1. **The LP over every allowed pair, by column generation.** It starts from each unit's nearest reps, plus, for
   every rep, its nearest units not claimed by another rep until they carry its lower bound of each balanced
   attribute (so that every lower bound is reachable, even for reps close together), solves the LP on those pairs with HiGHS and prices every allowed pair with the row duals,
   adding those with negative reduced cost, until none is left. A restricted LP that is infeasible gets a phase 1
   (slacks on the coupling rows, priced the same way) to find the pairs that make it feasible, or to prove that no
   allowed pair can.
2. **A Lagrangian bound valid for every allowed pair.** With the coupling rows' duals ``y`` (sign-corrected), every
   feasible assignment costs at least ``LB = Σ_u min_s (c_us − y·a_us) + Σ_r y_r·bound_r``, whatever the duals'
   precision; and a solution that uses pair (u, s) costs at least ``LB + rc_us``.
3. **The LP rounded and repaired** (``territory_search``): the LP again on its pairs with every row bound narrowed
   a little, so that giving each unit its largest LP pair lands close to the real bounds; single moves repair what
   rounding broke, then shifts and swaps lower the cost while every row holds. No MIP: about 25 s at 50,000
   units × 500 reps.
4. **A MIP proving the gap**, when the incumbent is not yet within the asked gap of ``LB``: every pair with
   ``rc_us ≤ incumbent − LB`` (no other pair can be in a better solution), warm-started from the incumbent. Its
   bound is then valid over all allowed pairs. Past ``PROOF_PAIRS`` pairs it keeps the cheapest, and the gap
   reported is against ``LB`` alone.

The coupling rows keep the names that ``territories`` explains (``balance_upper_workload[3]``), so an infeasible
model is explained as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from scipy import sparse

from optimizers.solve import MatrixModel, SolveOptions, SolveResult, solve
from optimizers.territory_search import improve, repair, rounded

#: Each unit's nearest reps offered in the first LP when every rep is allowed.
FIRST_NEAREST = 8
#: Units (by nearness, none claimed by another rep) offered to each rep until they carry this multiple of its
#: balance lower bound: reps close together then reach their lower bounds from different units.
REACH_MULTIPLE = 1.0
#: Units handled per block when pricing every pair (bounds memory to a block × reps).
PRICE_BLOCK = 4096
#: Pairs of most negative reduced cost added per unit in a pricing round.
PRICED_PER_UNIT = 3
#: Pricing rounds before giving up on proving the LP over every pair (the bound stays valid, only weaker).
MAX_ROUNDS = 60
#: Most pairs the proving MIP takes; beyond, the cheapest ones, and the gap is the Lagrangian bound's alone.
PROOF_PAIRS = 1_000_000
#: Fractions by which the heuristic's LP narrows every row bound, tried in turn until its rounding can be repaired:
#: rounding moves a rep's load by about one unit's, so an LP with room inside the real bounds rounds close to them.
NARROWING = (0.005, 0.02, 0.05)


@dataclass(frozen=True)
class Cost:
    """A linear objective: ``compactness × distance·weight + disruption × moving cost (when not the owner)``."""

    compactness: float = 0.0
    disruption: float = 0.0


@dataclass(frozen=True)
class RowFamily:
    """One coupling row per rep: ``lower_s ≤ Σ_u values_u · scale_s · x_us ≤ upper_s`` (named ``name[s]``)."""

    name: str
    values: np.ndarray
    scale: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class Held:
    """A lexicographic stage's objective kept at most ``bound`` (row ``name``)."""

    name: str
    cost: Cost
    bound: float


@dataclass(frozen=True)
class AssignmentData:
    """The assignment model's data. ``distance``: reps × units; ``weight``: per-unit compactness weight;
    ``moving``: per-unit disruption cost (0 without an owner); ``owner``: owner index or −1; ``locked``: per unit;
    ``allowed``: explicit (rep, unit) pairs, or None for every pair (a locked unit: its owner only)."""

    distance: np.ndarray
    weight: np.ndarray
    moving: np.ndarray
    owner: np.ndarray
    locked: np.ndarray
    families: tuple[RowFamily, ...]
    allowed: tuple[np.ndarray, np.ndarray] | None

    @property
    def shape(self) -> tuple[int, int]:
        return self.distance.shape

    def cost(self, cost: Cost, s: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The objective's coefficient of pairs (s, u) (broadcasting)."""
        value = np.zeros(np.broadcast_shapes(np.shape(s), np.shape(u)))
        if cost.compactness:
            value = value + cost.compactness * self.distance[s, u] * self.weight[u]
        if cost.disruption:
            value = value + cost.disruption * self.moving[u] * (s != self.owner[u])
        return value


@dataclass(frozen=True)
class Outcome:
    """A solved stage: ``chosen`` rep index per unit (None without a solution), the combined SolveResult, the
    coupling rows' duals by family name (per rep) and how the search went (``search``, for the summary)."""

    chosen: np.ndarray | None
    result: SolveResult
    duals: dict[str, np.ndarray]
    search: dict[str, object]


@dataclass
class _Columns:
    """Pairs (rep ``s``, unit ``u``), kept sorted by unit then rep, without repeats."""

    s: np.ndarray
    u: np.ndarray

    def add(self, s: np.ndarray, u: np.ndarray) -> int:
        """Add new pairs; returns how many were new."""
        n_before = len(self.s)
        key = np.unique(np.concatenate([self.u * 1_000_003 + self.s, u * 1_000_003 + s]))
        self.u, self.s = key // 1_000_003, key % 1_000_003
        return len(self.s) - n_before


class _Names:
    """``x[u,s]`` column names, made only when asked for (an explanation), not for every column."""

    def __init__(self, columns: _Columns, slacks: int = 0):
        self._s, self._u, self._slacks = columns.s, columns.u, slacks  # the arrays as they are now

    def __len__(self) -> int:
        return len(self._s) + self._slacks

    def __getitem__(self, j: int) -> str:
        if j >= len(self._s):
            return f"slack[{j - len(self._s)}]"
        return f"x[{self._u[j]},{self._s[j]}]"


def solve_assignment(data: AssignmentData, cost: Cost, held: tuple[Held, ...], options: SolveOptions, start: np.ndarray | None = None) -> Outcome:
    """Solve one stage: minimise ``cost`` subject to the families and ``held``, within ``options``' time and gap.
    ``start``: a design meeting every row (rep index per unit; a lexicographic stage's predecessor), improved first."""
    started = time.perf_counter()
    deadline = started + options.time_limit if options.time_limit is not None else None
    spent = [0.0]  # seconds inside HiGHS; the rest is building and pricing

    def run(matrix: MatrixModel, run_options: SolveOptions, start: np.ndarray | None = None) -> SolveResult:
        result = solve(matrix, run_options, start=start)
        spent[0] += result.solve_seconds
        return result

    columns = _first_columns(data)
    if start is not None:
        columns.add(start.astype(np.int64), np.arange(data.shape[1]))
    search: dict[str, object] = {"first_pairs": int(len(columns.s))}
    lp, search["pricing_rounds"], search["phase_one_rounds"] = _column_generation(data, cost, held, columns, run, options, deadline)
    search["lp_pairs"] = int(len(columns.s))
    duals: dict[str, np.ndarray] = {}
    bound, incumbent, chosen = -np.inf, None, None
    if lp.status == "optimal":
        duals = _duals(data, held, lp.duals)
        bound = _lagrangian_bound(data, cost, held, duals)
        search["lp_bound"] = bound
        chosen = _heuristic(data, cost, held, columns, run, options, deadline, search, start, bound)
        if chosen is not None:
            objective = float(data.cost(cost, chosen, np.arange(data.shape[1])).sum())
            incumbent = SolveResult("feasible", "heuristic", objective, None, None, 0.0, 0.0)
    out_of_time = deadline is not None and time.perf_counter() >= deadline
    if incumbent is not None and (out_of_time or relative_gap(incumbent.objective, bound) <= (options.rel_gap or 0.0)):
        result = replace(incumbent, termination="time_limit") if out_of_time else incumbent
    elif lp.status == "optimal" or lp.status == "infeasible" and data.allowed is not None:
        # every pair that can be in a solution better than the incumbent (all of them without one), if not too many
        threshold = np.inf if incumbent is None else incumbent.objective - bound + 1e-9 * max(1.0, abs(incumbent.objective))
        pairs, complete = _below(data, cost, held, duals, threshold, PROOF_PAIRS) if lp.status == "optimal" else (_listed_pairs(data), True)
        warm = None
        if chosen is not None:
            pairs.add(chosen, np.arange(data.shape[1]))
            warm = (chosen[pairs.u] == pairs.s).astype(float)
        search["proof_pairs"], search["proof_complete"] = int(len(pairs.s)), complete
        result = run(_matrix(data, cost, held, pairs, integer=True), replace(options, time_limit=_left(deadline, 1.0)), warm)
        if not complete:  # the MIP left out pairs that could improve: its bound is not the whole problem's
            result = replace(result, bound=None, status="feasible" if result.has_solution else result.status)
        if result.has_solution and (incumbent is None or result.objective <= incumbent.objective):
            chosen = _chosen(pairs, result.values, data.shape[1])
        elif incumbent is not None:  # HiGHS stopped before matching the incumbent it was given
            result = replace(result, status="feasible", objective=incumbent.objective)
    else:  # the LP found no design in time, or phase 1 proved the restricted pairs infeasible
        result = run(_matrix(data, cost, held, columns, integer=True), replace(options, time_limit=_left(deadline, 1.0)))
        chosen = _chosen(columns, result.values, data.shape[1]) if result.has_solution else None
        if result.has_solution and data.allowed is None:  # a design over the LP's pairs only: no proof
            result = replace(result, bound=None, status="feasible")
    if result.has_solution:
        best = max(bound, result.bound if result.bound is not None else -np.inf)
        gap = relative_gap(result.objective, best) if np.isfinite(best) else None
        optimal = gap is not None and (gap <= (options.rel_gap or 0.0) + 1e-12 or result.status == "optimal")
        result = replace(
            result, bound=best if gap is not None else None, gap=gap, status="optimal" if optimal else "feasible",
            termination="optimal" if optimal else result.termination,
        )
    elapsed = time.perf_counter() - started
    return Outcome(chosen, replace(result, build_seconds=elapsed - spent[0], solve_seconds=spent[0]), duals, search)


def _heuristic(
    data: AssignmentData, cost: Cost, held: tuple[Held, ...], columns: _Columns, run: Callable[..., SolveResult],
    options: SolveOptions, deadline: float | None, search: dict[str, object], start: np.ndarray | None, bound: float,
) -> np.ndarray | None:
    """A design improved along ``columns`` within every row (``territory_search``): from ``start`` when given; then,
    unless that is within the asked gap of ``bound``, from the LP over ``columns`` with its rows narrowed
    (``NARROWING``, each tried in turn until one rounds to a repairable design), rounded and repaired. The cheaper
    of the two; None when neither gives a design."""
    pairs, units = (columns.s, columns.u), np.arange(data.shape[1])
    started = time.perf_counter()
    # a start from a MIP meets its rows within the solver's tolerance, not always within the search's: repaired first
    feasible_start = repair(data, cost, held, start, pairs, deadline) if start is not None else None
    best = improve(data, cost, held, feasible_start, pairs, deadline) if feasible_start is not None else None

    def total(chosen: np.ndarray) -> float:
        return float(data.cost(cost, chosen, units).sum())

    if best is not None:
        search["from_start_objective"] = total(best)
        if relative_gap(total(best), bound) <= (options.rel_gap or 0.0):
            search["heuristic_seconds"] = time.perf_counter() - started
            return best
    lp_options = SolveOptions(rel_gap=None, threads=options.threads, explain=False)
    for fraction in NARROWING:
        if deadline is not None and time.perf_counter() > deadline:
            break
        lp = run(_matrix(_narrowed(data, fraction), cost, held, columns, integer=False), replace(lp_options, time_limit=_left(deadline, 1.0)))
        if lp.status != "optimal":
            break  # infeasible or out of time: narrower rows only make it worse
        repaired = repair(data, cost, held, rounded(pairs, lp.values[: len(columns.s)], data.shape[1]), pairs, deadline)
        if repaired is None:
            continue
        chosen = improve(data, cost, held, repaired, pairs, deadline)
        search.update(narrowing=fraction, repaired_objective=total(repaired), heuristic_objective=total(chosen))
        if best is None or total(chosen) < total(best):
            best = chosen
        break
    search["heuristic_seconds"] = time.perf_counter() - started
    return best


def _narrowed(data: AssignmentData, fraction: float) -> AssignmentData:
    """The data with every finite row bound moved inwards by ``fraction`` of its size."""
    def inwards(bound: np.ndarray, sign: float) -> np.ndarray:
        return bound + sign * fraction * np.abs(np.where(np.isfinite(bound), bound, 0.0))

    families = tuple(replace(f, lower=inwards(f.lower, 1.0), upper=inwards(f.upper, -1.0)) for f in data.families)
    return replace(data, families=families)


def _listed_pairs(data: AssignmentData) -> _Columns:
    """Every allowed pair, when they are listed."""
    columns = _Columns(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    columns.add(*data.allowed)
    return columns


def _left(deadline: float | None, share: float) -> float | None:
    """A share of the time left (at least a second), or None without a limit."""
    if deadline is None:
        return None
    return max(1.0, (deadline - time.perf_counter()) * share)


def relative_gap(objective: float, bound: float) -> float:
    """How far ``objective`` is above ``bound``, as a share of the objective (0 when at or below it)."""
    return max(0.0, objective - bound) / max(abs(objective), 1e-9)


# ----- pairs -----


def _first_columns(data: AssignmentData) -> _Columns:
    """The first LP's pairs: every allowed pair when they are listed; else each unit's nearest reps and, per rep,
    its nearest units not claimed by another rep until they carry ``REACH_MULTIPLE`` × its lower bound of each
    balanced attribute (a transportation-style start: every lower bound is reachable from disjoint units)."""
    n_reps, n_units = data.shape
    if data.allowed is not None:
        return _listed_pairs(data)
    free = ~data.locked
    k = min(FIRST_NEAREST, n_reps)
    nearest = np.argpartition(data.distance, k - 1, axis=0)[:k] if k < n_reps else np.tile(np.arange(n_reps)[:, None], (1, n_units))
    units = np.flatnonzero(free)
    s = [nearest[:, units].ravel()]
    u = [np.tile(units, k)]
    order = np.argsort(data.distance[:, units], axis=1)
    for family in data.families:
        if not np.isfinite(family.lower).any():
            continue
        need = REACH_MULTIPLE * family.lower / np.where(family.scale > 0, family.scale, 1.0)
        claimed = np.zeros(len(units), dtype=bool)
        for rep in np.argsort(-need):  # each rep claims its nearest units that no other rep has claimed
            mine = order[rep][~claimed[order[rep]]]
            carried = np.cumsum(family.values[units][mine])
            take = mine[: min(int(np.sum(carried < need[rep])) + 1, len(mine))]
            claimed[take] = True
            u.append(units[take])
            s.append(np.full(len(take), rep))
    locked = np.flatnonzero(data.locked)
    s.append(data.owner[locked])
    u.append(locked)
    columns = _Columns(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    columns.add(np.concatenate(s).astype(np.int64), np.concatenate(u).astype(np.int64))
    return columns


def _blocks(data: AssignmentData):
    """Blocks of units for dense pricing over every pair, with the mask of pairs allowed there."""
    n_reps, n_units = data.shape
    reps = np.arange(n_reps)[:, None]
    for first in range(0, n_units, PRICE_BLOCK):
        u = np.arange(first, min(first + PRICE_BLOCK, n_units))
        allowed = ~data.locked[u][None, :] | (reps == data.owner[u][None, :])
        yield u, allowed


def _reduced(data: AssignmentData, cost: Cost, held: tuple[Held, ...], duals: dict[str, np.ndarray], s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``c_us − Σ y·a_us`` over the coupling rows (the assignment rows' duals left out), broadcasting."""
    value = data.cost(cost, s, u)
    for family in data.families:
        y = duals[family.name]
        value = value - y[s] * family.scale[s] * family.values[u]
    for row in held:
        value = value - duals[row.name][0] * data.cost(row.cost, s, u)
    return value


def _per_unit_min(data: AssignmentData, cost: Cost, held: tuple[Held, ...], duals: dict[str, np.ndarray]) -> np.ndarray:
    """Per unit, the least ``c − y·a`` over its allowed pairs."""
    n_reps, n_units = data.shape
    if data.allowed is not None:
        s, u = data.allowed
        best = np.full(n_units, np.inf)
        np.minimum.at(best, u, _reduced(data, cost, held, duals, s, u))
        return best
    best = np.empty(n_units)
    reps = np.arange(n_reps)[:, None]
    for u, allowed in _blocks(data):
        best[u] = np.where(allowed, _reduced(data, cost, held, duals, reps, u[None, :]), np.inf).min(axis=0)
    return best


def _below(data: AssignmentData, cost: Cost, held: tuple[Held, ...], duals: dict[str, np.ndarray], threshold: float, limit: int) -> tuple[_Columns, bool]:
    """Every allowed pair whose reduced cost (against its unit's best) is at most ``threshold``; when there are
    more than ``limit``, the ``limit`` cheapest (and False: the set is not complete)."""
    n_reps, _ = data.shape
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if data.allowed is not None:
        s, u = data.allowed
        value = _reduced(data, cost, held, duals, s, u)
        best = np.full(data.shape[1], np.inf)
        np.minimum.at(best, u, value)
        extra = value - best[u]
        keep = extra <= threshold
        found.append((extra[keep], s[keep], u[keep]))
    else:
        reps = np.arange(n_reps)[:, None]
        for u, allowed in _blocks(data):
            value = np.where(allowed, _reduced(data, cost, held, duals, reps, u[None, :]), np.inf)
            extra = value - value.min(axis=0)[None, :]
            rows, cols = np.nonzero(extra <= threshold)
            found.append((extra[rows, cols], rows.astype(np.int64), u[cols].astype(np.int64)))
    extra, s, u = (np.concatenate(parts) for parts in zip(*found))
    complete = len(extra) <= limit
    if not complete:
        keep = np.argpartition(extra, limit - 1)[:limit]
        s, u = s[keep], u[keep]
    columns = _Columns(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    columns.add(s, u)
    return columns, complete


def _chosen(columns: _Columns, values: np.ndarray, n_units: int) -> np.ndarray:
    """Per unit, the rep its column with value 1 points to."""
    chosen = np.full(n_units, -1)
    picked = values[: len(columns.s)] > 0.5
    chosen[columns.u[picked]] = columns.s[picked]
    return chosen


# ----- the LP by column generation -----


def _column_generation(
    data: AssignmentData, cost: Cost, held: tuple[Held, ...], columns: _Columns, run: Callable[..., SolveResult], options: SolveOptions,
    deadline: float | None,
) -> tuple[SolveResult, int, int]:
    """The LP over every allowed pair; ``columns`` grows in place. Returns the last LP, pricing rounds and phase-1
    rounds. An infeasible result means no allowed pair makes the relaxation feasible. Pricing stops when a round
    no longer lowers the LP (degenerate pairs of reduced cost −1e-9 can go on for many rounds); the Lagrangian
    bound is over every pair whatever the round it stops at."""
    lp_options = SolveOptions(rel_gap=None, threads=options.threads, explain=False)
    rounds = phase_one = 0
    previous: float | None = None
    while True:
        lp = run(_matrix(data, cost, held, columns, integer=False), replace(lp_options, time_limit=_left(deadline, 1.0)))
        if lp.status == "infeasible" and data.allowed is None:
            phase_one += 1
            feasibility = run(_matrix(data, Cost(), held, columns, integer=False, slacks=True), replace(lp_options, time_limit=_left(deadline, 1.0)))
            if not feasibility.has_solution or feasibility.duals is None:
                return lp, rounds, phase_one
            if not _price(data, Cost(), held, _duals(data, held, feasibility.duals), feasibility.duals[: data.shape[1]], columns):
                return lp, rounds, phase_one
            continue
        if lp.status != "optimal" or lp.duals is None or data.allowed is not None or rounds >= MAX_ROUNDS:
            return lp, rounds, phase_one
        if previous is not None and previous - lp.objective <= 1e-7 * max(1.0, abs(lp.objective)):
            return lp, rounds, phase_one  # no progress: the bound below is over every pair all the same
        previous = lp.objective
        rounds += 1
        if not _price(data, cost, held, _duals(data, held, lp.duals), lp.duals[: data.shape[1]], columns):
            return lp, rounds, phase_one


def _price(data: AssignmentData, cost: Cost, held: tuple[Held, ...], duals: dict[str, np.ndarray], unit_duals: np.ndarray, columns: _Columns) -> int:
    """Add, per unit, its ``PRICED_PER_UNIT`` allowed pairs of most negative reduced cost (those below −tolerance);
    returns how many were added."""
    n_reps, _ = data.shape
    reps = np.arange(n_reps)[:, None]
    k = min(PRICED_PER_UNIT, n_reps)
    s_new, u_new = [], []
    for u, allowed in _blocks(data):
        value = np.where(allowed, _reduced(data, cost, held, duals, reps, u[None, :]), np.inf) - unit_duals[u][None, :]
        best = np.argpartition(value, k - 1, axis=0)[:k] if k < n_reps else np.tile(np.arange(n_reps)[:, None], (1, len(u)))
        scale = 1e-9 * np.maximum(1.0, np.abs(unit_duals[u]))
        negative = np.take_along_axis(value, best, axis=0) < -scale[None, :]
        s_new.append(best[negative])
        u_new.append(np.broadcast_to(u[None, :], best.shape)[negative])
    return columns.add(np.concatenate(s_new).astype(np.int64), np.concatenate(u_new).astype(np.int64))


def _duals(data: AssignmentData, held: tuple[Held, ...], row_duals: np.ndarray) -> dict[str, np.ndarray]:
    """The coupling rows' duals by family, with the sign each row's bounds allow (so the bound stays valid)."""
    n_reps, n_units = data.shape
    out = {}
    offset = n_units
    for family in data.families:
        y = np.asarray(row_duals[offset: offset + n_reps], dtype=float)
        y = np.where(np.isfinite(family.lower), y, np.minimum(y, 0.0))
        y = np.where(np.isfinite(family.upper), y, np.maximum(y, 0.0))
        out[family.name] = y
        offset += n_reps
    for row in held:
        out[row.name] = np.minimum(np.asarray(row_duals[offset: offset + 1], dtype=float), 0.0)
        offset += 1
    return out


def _lagrangian_bound(data: AssignmentData, cost: Cost, held: tuple[Held, ...], duals: dict[str, np.ndarray]) -> float:
    """``Σ_u min_s (c − y·a) + Σ_r y_r · bound_r``: no feasible assignment over the allowed pairs costs less."""
    total = float(_per_unit_min(data, cost, held, duals).sum())
    for family in data.families:
        y = duals[family.name]
        total += float(np.sum(np.where(y > 0, y * np.where(np.isfinite(family.lower), family.lower, 0.0), y * np.where(np.isfinite(family.upper), family.upper, 0.0))))
    for row in held:
        total += float(duals[row.name][0] * row.bound)
    return total


# ----- matrices -----


def _matrix(
    data: AssignmentData, cost: Cost, held: tuple[Held, ...], columns: _Columns, integer: bool, slacks: bool = False
) -> MatrixModel:
    """The model on the given pairs: assignment rows, then one row per rep per family, then the held rows.
    ``slacks``: phase 1 (each coupling row gets a slack each way at cost 1, pairs cost 0)."""
    n_reps, n_units = data.shape
    s, u = columns.s, columns.u
    n = len(s)
    rows = [u]
    cols = [np.arange(n)]
    vals = [np.ones(n)]
    lower = [np.ones(n_units)]
    upper = [np.ones(n_units)]
    names = [f"assign[{i}]" for i in range(n_units)]
    offset = n_units
    for family in data.families:
        coef = family.values[u] * family.scale[s]
        keep = coef != 0
        rows.append(offset + s[keep])
        cols.append(np.flatnonzero(keep))
        vals.append(coef[keep])
        lower.append(family.lower)
        upper.append(family.upper)
        names += [f"{family.name}[{rep}]" for rep in range(n_reps)]
        offset += n_reps
    for row in held:
        coef = data.cost(row.cost, s, u)
        keep = coef != 0
        rows.append(np.full(int(keep.sum()), offset))
        cols.append(np.flatnonzero(keep))
        vals.append(coef[keep])
        lower.append(np.array([-np.inf]))
        upper.append(np.array([row.bound]))
        names.append(row.name)
        offset += 1
    c = np.zeros(n) if slacks else data.cost(cost, s, u)
    n_slack = 0
    if slacks:
        coupling = np.arange(n_units, offset)
        n_slack = 2 * len(coupling)
        rows += [coupling, coupling]
        cols += [n + np.arange(len(coupling)), n + len(coupling) + np.arange(len(coupling))]
        vals += [np.ones(len(coupling)), -np.ones(len(coupling))]
        c = np.concatenate([c, np.ones(n_slack)])
    matrix = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(offset, n + n_slack))
    col_upper = np.concatenate([np.ones(n), np.full(n_slack, np.inf)])
    flags = np.concatenate([np.full(n, integer), np.zeros(n_slack, dtype=bool)])
    return MatrixModel(
        c=c, A=matrix, row_lower=np.concatenate(lower), row_upper=np.concatenate(upper), col_lower=np.zeros(n + n_slack),
        col_upper=col_upper, integer=flags, row_names=names, col_names=_Names(columns, n_slack),
    )
