"""The one way this project solves an optimization model: HiGHS, with limits, status as data and explanations.

Every optimizer builds a model (a Pyomo ``ConcreteModel``, or a ``MatrixModel`` of numpy arrays where Pyomo's
construction time would dominate) and hands it to ``solve``. ``solve`` never loads a solution before it has
checked that one exists, returns what happened as a frozen ``SolveResult``, and, for an infeasible model, names
the constraints that cannot hold together (an irreducible infeasible set, IIS) by their readable names.

HiGHS computes an IIS for linear programs only. For a mixed-integer model the explanation first asks HiGHS for the
IIS of the LP relaxation; when the relaxation is feasible (the conflict needs integrality), it runs a deletion
filter over the model's constraint families and then over their rows, re-solving with integrality.

HiGHS's presolve can stop at "infeasible or unbounded". ``solve`` then decides: it solves again without presolve
and, if that still does not tell, looks for any feasible point (objective dropped): none means infeasible (and is
explained), one means unbounded.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Sequence

import highspy
import numpy as np
import pyomo.environ as pyo
from pyomo.contrib.solver.common.results import SolutionStatus, TerminationCondition
from pyomo.contrib.solver.solvers.highs import Highs as PyomoHighs
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler
from scipy import sparse

Status = Literal["optimal", "feasible", "infeasible", "unbounded", "no_solution", "error"]

#: HiGHS model statuses in words, for ``SolveResult.termination``.
_TERMINATION = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible_or_unbounded",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kIterationLimit: "iteration_limit",
    highspy.HighsModelStatus.kSolutionLimit: "solution_limit",
    highspy.HighsModelStatus.kInterrupt: "interrupted",
    highspy.HighsModelStatus.kObjectiveBound: "objective_limit",
    highspy.HighsModelStatus.kObjectiveTarget: "objective_limit",
}
_PYOMO_TERMINATION = {
    TerminationCondition.convergenceCriteriaSatisfied: "optimal",
    TerminationCondition.provenInfeasible: "infeasible",
    TerminationCondition.locallyInfeasible: "infeasible",
    TerminationCondition.infeasibleOrUnbounded: "infeasible_or_unbounded",
    TerminationCondition.unbounded: "unbounded",
    TerminationCondition.maxTimeLimit: "time_limit",
    TerminationCondition.iterationLimit: "iteration_limit",
    TerminationCondition.interrupted: "interrupted",
    TerminationCondition.objectiveLimit: "objective_limit",
}


@dataclass(frozen=True)
class SolveOptions:
    """Limits and reporting for one solve.

    ``rel_gap``: stop when (incumbent − bound) / incumbent is below it; ``log``: keep HiGHS's log in the result;
    ``echo``: called with each piece of the log as it comes (the command line passes a printer: nothing here
    writes anywhere); ``explain``: compute an IIS when the model is infeasible (costs extra solves).
    """

    time_limit: float | None = None
    rel_gap: float | None = 1e-4
    threads: int | None = None
    log: bool = False
    echo: Callable[[str], object] | None = None
    explain: bool = True
    explain_time_limit: float = 30.0


@dataclass(frozen=True)
class Infeasibility:
    """Constraints (and variable bounds) that cannot all hold, by readable name, and how they were found."""

    constraints: tuple[str, ...]
    bounds: tuple[str, ...] = ()
    method: str = ""
    complete: bool = True

    def describe(self) -> str:
        """One paragraph for a person: which constraints conflict."""
        if not self.constraints and not self.bounds:
            return "the model is infeasible; no smaller conflicting set was found within the time allowed"
        head = "these constraints cannot all hold" if self.complete else "these constraints include a conflict"
        bounds = f", with the bounds of {len(self.bounds)} variables" if self.bounds else ""
        return f"{head} ({self.method}{bounds}): " + "; ".join(self.constraints)


@dataclass(frozen=True)
class SolveResult:
    """What a solve did, as data.

    ``status``: ``optimal`` (within the gap), ``feasible`` (a solution, stopped by a limit), ``infeasible``,
    ``unbounded``, ``no_solution`` (stopped by a limit before finding one, or before telling infeasible from
    unbounded) or ``error``. ``termination`` is the solver's own reason. ``objective`` and ``bound`` are the
    incumbent and best bound (None when not finite), ``gap`` their relative difference. Times are wall-clock
    seconds; ``values`` holds the column values of a ``MatrixModel`` solve, ``duals`` its row duals (with
    ``c − Aᵀ·duals`` the reduced costs) when the solve has them.
    """

    status: Status
    termination: str
    objective: float | None
    bound: float | None
    gap: float | None
    build_seconds: float
    solve_seconds: float
    log: str | None = None
    infeasibility: Infeasibility | None = None
    values: np.ndarray | None = field(default=None, repr=False, compare=False)
    duals: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")

    def as_dict(self) -> dict[str, object]:
        """The result for a JSON summary (no log, no values)."""
        return {
            "status": self.status,
            "termination": self.termination,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "build_seconds": round(self.build_seconds, 4),
            "solve_seconds": round(self.solve_seconds, 4),
            "infeasibility": self.infeasibility.describe() if self.infeasibility else None,
        }


@dataclass(frozen=True)
class MatrixModel:
    """A linear (mixed-integer) model as arrays: minimise ``c·x + offset`` s.t. ``row_lower ≤ A x ≤ row_upper``.

    Built directly with numpy where Pyomo's construction is too slow, or from a Pyomo model (``from_pyomo``) to
    compute an IIS. ``row_names``/``col_names`` are what explanations print.
    """

    c: np.ndarray
    A: sparse.csr_array
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integer: np.ndarray
    row_names: Sequence[str]
    col_names: Sequence[str]
    offset: float = 0.0

    @classmethod
    def from_pyomo(cls, model: pyo.ConcreteModel) -> "MatrixModel":
        """The active constraints and objective of a linear Pyomo model, as arrays with Pyomo's names."""
        form = LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=pyo.minimize)
        rhs = np.asarray(form.rhs, dtype=float)
        operator = np.array([op for _, op in form.rows], dtype=int)
        row_lower = np.where(operator == -1, rhs, np.where(operator == 0, rhs, -np.inf))
        row_upper = np.where(operator == 1, rhs, np.where(operator == 0, rhs, np.inf))
        columns = form.columns
        bounds = np.array([(-np.inf if v.lb is None else v.lb, np.inf if v.ub is None else v.ub) for v in columns], dtype=float).reshape(-1, 2)
        c = np.asarray(form.c.toarray()).ravel() if form.c.shape[0] else np.zeros(len(columns))
        return cls(
            c=c,
            A=sparse.csr_array(form.A),
            row_lower=row_lower,
            row_upper=row_upper,
            col_lower=bounds[:, 0],
            col_upper=bounds[:, 1],
            integer=np.array([v.is_integer() or v.is_binary() for v in columns], dtype=bool),
            row_names=[con.name for con, _ in form.rows],
            col_names=[v.name for v in columns],
            offset=float(form.c_offset[0]) if len(form.c_offset) else 0.0,
        )

    def subset(self, rows: np.ndarray, integer: bool = True) -> "MatrixModel":
        """The same model with only the given rows, and integrality kept or relaxed."""
        return MatrixModel(
            self.c, sparse.csr_array(self.A[rows]), self.row_lower[rows], self.row_upper[rows], self.col_lower,
            self.col_upper, self.integer if integer else np.zeros_like(self.integer), [self.row_names[i] for i in np.flatnonzero(rows)],
            self.col_names, self.offset,
        )


def solve(
    model: pyo.ConcreteModel | MatrixModel, options: SolveOptions = SolveOptions(), build_seconds: float = 0.0, start: np.ndarray | None = None
) -> SolveResult:
    """Solve with HiGHS and report what happened; for a Pyomo model, load its solution only if one exists.

    ``build_seconds`` is the caller's model construction time, carried into the result so that build and solve
    times are reported side by side. ``start``: column values of a known feasible point of a ``MatrixModel``, given
    to HiGHS as its first incumbent (a warm start).
    """
    result = _run(model, options, build_seconds, start=start)
    if result.termination == "infeasible_or_unbounded":
        result = _decide(model, options, result)
    if result.status == "infeasible" and options.explain:
        matrix = model if isinstance(model, MatrixModel) else MatrixModel.from_pyomo(model)
        result = replace(result, infeasibility=explain_infeasibility(matrix, options.explain_time_limit))
    return result


def _run(
    model: pyo.ConcreteModel | MatrixModel, options: SolveOptions, build_seconds: float, presolve: bool = True, start: np.ndarray | None = None
) -> SolveResult:
    if isinstance(model, MatrixModel):
        return _solve_matrix(model, options, build_seconds, presolve, start)
    return _solve_pyomo(model, options, build_seconds, presolve)


def _decide(model: pyo.ConcreteModel | MatrixModel, options: SolveOptions, undecided: SolveResult) -> SolveResult:
    """Turn presolve's "infeasible or unbounded" into one of the two (or a solution, if presolve was wrong).

    First a solve without presolve; if HiGHS still cannot tell (an integer model whose relaxation is unbounded),
    a search for any feasible point with the objective dropped: none means infeasible, one means unbounded.
    """
    result = _run(model, options, undecided.build_seconds, presolve=False)
    spent = undecided.solve_seconds + result.solve_seconds
    if result.termination != "infeasible_or_unbounded":
        return replace(result, solve_seconds=spent)
    matrix = model if isinstance(model, MatrixModel) else MatrixModel.from_pyomo(model)
    started = time.perf_counter()
    highs = _load(_feasibility(matrix), SolveOptions(time_limit=options.time_limit, rel_gap=None, threads=options.threads))
    highs.run()
    spent += time.perf_counter() - started
    if highs.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
        termination = "infeasible"
    elif highs.getInfo().primal_solution_status == 2:
        termination = "unbounded"
    else:
        return replace(result, solve_seconds=spent)
    return replace(result, status=_status(termination, False), termination=termination, solve_seconds=spent)


def _feasibility(model: MatrixModel) -> MatrixModel:
    """The same constraints with no objective: any feasible point is optimal."""
    return replace(model, c=np.zeros_like(model.c), offset=0.0)


def _solve_pyomo(model: pyo.ConcreteModel, options: SolveOptions, build_seconds: float, presolve: bool = True) -> SolveResult:
    stream = io.StringIO()
    tee: list = [stream] if options.log else []
    if options.echo is not None:
        tee.append(_EchoStream(options.echo))
    config = {"threads": options.threads} if options.threads else {}
    started = time.perf_counter()
    results = PyomoHighs().solve(
        model, tee=tee, time_limit=options.time_limit, rel_gap=options.rel_gap, load_solutions=False,
        raise_exception_on_nonoptimal_result=False, solver_options={} if presolve else {"presolve": "off"}, **config,
    )
    elapsed = time.perf_counter() - started
    termination = _PYOMO_TERMINATION.get(results.termination_condition, str(results.termination_condition.name))
    has_solution = results.solution_status in (SolutionStatus.optimal, SolutionStatus.feasible)
    if has_solution:
        results.solution_loader.load_vars()
    objective = results.incumbent_objective if has_solution else None
    log = stream.getvalue() if options.log else None
    return _result(termination, has_solution, objective, results.objective_bound, build_seconds, elapsed, log)


def _solve_matrix(model: MatrixModel, options: SolveOptions, build_seconds: float, presolve: bool = True, start: np.ndarray | None = None) -> SolveResult:
    started = time.perf_counter()
    highs = _load(model, options)
    if not presolve:
        highs.setOptionValue("presolve", "off")
    if start is not None:
        solution = highspy.HighsSolution()
        solution.col_value = np.asarray(start, dtype=float)
        solution.value_valid = True
        highs.setSolution(solution)
    log: list[str] = []
    if options.log or options.echo is not None:
        highs.cbLogging += lambda event: _log_line(event.message, log if options.log else None, options.echo)
    highs.run()
    elapsed = time.perf_counter() - started
    info = highs.getInfo()
    model_status = highs.getModelStatus()
    termination = _TERMINATION.get(model_status, highs.modelStatusToString(model_status).lower().replace(" ", "_"))
    has_solution = info.primal_solution_status == 2
    objective = info.objective_function_value if has_solution else None
    bound = info.mip_dual_bound if model.integer.any() else (objective if termination == "optimal" else None)
    solution = highs.getSolution()
    values = np.asarray(solution.col_value) if has_solution else None
    duals = np.asarray(solution.row_dual) if solution.dual_valid else None
    return _result(termination, has_solution, objective, bound, build_seconds, elapsed, "".join(log) if options.log else None, values, duals)


def _result(
    termination: str, has_solution: bool, objective: float | None, bound: float | None, build_seconds: float,
    solve_seconds: float, log: str | None, values: np.ndarray | None = None, duals: np.ndarray | None = None,
) -> SolveResult:
    """The SolveResult of a finished solve, whichever way the model was passed to HiGHS."""
    bound = None if bound is None or not math.isfinite(bound) else bound
    return SolveResult(
        status=_status(termination, has_solution), termination=termination, objective=objective, bound=bound,
        gap=_gap(objective, bound), build_seconds=build_seconds, solve_seconds=solve_seconds, log=log, values=values,
        duals=duals,
    )


def _log_line(message: str, kept: list[str] | None, echo: Callable[[str], object] | None) -> None:
    """One message of HiGHS's log (through its logging callback, so no file is involved): kept and/or echoed."""
    if kept is not None:
        kept.append(message)
    if echo is not None:
        echo(message)


class _EchoStream(io.TextIOBase):
    """The stream Pyomo's ``tee`` writes the log to, handing each piece to the caller's ``echo``."""

    def __init__(self, echo: Callable[[str], object]):
        super().__init__()
        self._echo = echo

    def write(self, text: str) -> int:
        self._echo(text)
        return len(text)


def _load(model: MatrixModel, options: SolveOptions) -> highspy.Highs:
    """A HiGHS instance holding the model, with the options applied; its log goes only to a logging callback."""
    highs = highspy.Highs()
    highs.setOptionValue("output_flag", options.echo is not None or options.log)
    highs.setOptionValue("log_to_console", False)
    if options.time_limit is not None:
        highs.setOptionValue("time_limit", float(options.time_limit))
    if options.rel_gap is not None:
        highs.setOptionValue("mip_rel_gap", float(options.rel_gap))
    if options.threads:
        highs.setOptionValue("threads", int(options.threads))
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(model.c), model.A.shape[0]
    lp.col_cost_ = model.c
    lp.col_lower_, lp.col_upper_ = model.col_lower, model.col_upper
    lp.row_lower_, lp.row_upper_ = model.row_lower, model.row_upper
    lp.offset_ = model.offset
    matrix = sparse.csc_array(model.A)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr.astype(np.int32)
    lp.a_matrix_.index_ = matrix.indices.astype(np.int32)
    lp.a_matrix_.value_ = matrix.data.astype(float)
    if model.integer.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous for flag in model.integer]
    highs.passModel(lp)
    return highs


def explain_infeasibility(model: MatrixModel, time_limit: float = 30.0) -> Infeasibility:
    """Name a set of constraints that cannot hold together.

    First the IIS of the LP relaxation (HiGHS ``getIis``); if the relaxation is feasible, a deletion filter with
    integrality: drop each constraint family (the name before ``[``) and keep it dropped while the rest stays
    infeasible, then do the same row by row within the families left. Stops at ``time_limit`` seconds, saying the
    set found may not be irreducible. Only feasibility matters, so the objective is dropped.
    """
    model = _feasibility(model)
    relaxed = _load(model.subset(np.ones(model.A.shape[0], dtype=bool), integer=False), SolveOptions(time_limit=time_limit))
    relaxed.setOptionValue("iis_strategy", int(highspy.IisStrategy.kIisStrategyFromLp) + int(highspy.IisStrategy.kIisStrategyIrreducible))
    relaxed.run()
    if relaxed.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
        status, iis = relaxed.getIis()
        if status != highspy.HighsStatus.kError and len(iis.row_index_) + len(iis.col_index_) > 0:
            return Infeasibility(
                constraints=tuple(model.row_names[i] for i in iis.row_index_),
                bounds=tuple(model.col_names[j] for j in iis.col_index_ if model.col_lower[j] > -np.inf or model.col_upper[j] < np.inf),
                method="IIS of the linear relaxation",
            )
    return _deletion_filter(model, time_limit)


#: Above this many rows left after the family pass, the row-by-row pass would cost too many solves.
ROW_FILTER_LIMIT = 200


def _deletion_filter(model: MatrixModel, time_limit: float) -> Infeasibility:
    deadline = time.perf_counter() + time_limit
    families: dict[str, list[int]] = {}
    for index, name in enumerate(model.row_names):
        families.setdefault(name.split("[", 1)[0], []).append(index)
    keep = np.ones(model.A.shape[0], dtype=bool)

    def infeasible_without(group: list[int]) -> bool | None:
        """True if the kept rows minus ``group`` are still infeasible; None when time ran out or undecided."""
        trial = keep.copy()
        trial[group] = False
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        highs = _load(model.subset(trial), SolveOptions(time_limit=remaining, rel_gap=None))
        highs.setOptionValue("mip_max_improving_sols", 1)  # one feasible point settles it
        highs.run()
        if highs.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
            return True
        return False if highs.getInfo().primal_solution_status == 2 else None

    def filter_groups(groups: list[list[int]]) -> bool:
        for group in groups:
            verdict = infeasible_without(group)
            if verdict is None:
                return False
            if verdict:
                keep[group] = False
        return True

    complete = filter_groups(list(families.values()))
    method = "deletion filter over constraint families, with integrality"
    if complete and keep.sum() <= ROW_FILTER_LIMIT:
        complete = filter_groups([[i] for i in np.flatnonzero(keep)])
        method = "deletion filter over constraints, with integrality"
    names = tuple(model.row_names[i] for i in np.flatnonzero(keep))
    return Infeasibility(constraints=names, method=method, complete=complete)


def _status(termination: str, has_solution: bool) -> Status:
    if termination in ("infeasible", "unbounded"):  # an unbounded model may come with a (meaningless) point
        return termination
    if termination == "optimal" and has_solution:
        return "optimal"
    if has_solution:
        return "feasible"
    if termination in ("time_limit", "iteration_limit", "solution_limit", "interrupted", "objective_limit", "infeasible_or_unbounded"):
        return "no_solution"
    return "error"


def _gap(objective: float | None, bound: float | None) -> float | None:
    """Relative gap as HiGHS defines it: |incumbent − bound| / max(|incumbent|, tiny)."""
    if objective is None or bound is None or not math.isfinite(bound):
        return None
    return abs(objective - bound) / max(abs(objective), 1e-9)
