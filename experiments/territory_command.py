"""``salesops optimize territories``: read the CSVs, design territories, explain, score by simulation, write files.

Pyomo, HiGHS, matplotlib and the engine load inside the steps that use them, so that merely registering this
command keeps every ``salesops`` command quick to start.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, Optional

import typer

from experiments.console import edge_errors, fail
from experiments.output import RunFiles, output_folder

if TYPE_CHECKING:
    import pandas as pd

    from optimizers.solve import SolveOptions
    from optimizers.territories import Design, DesignSpec
    from optimizers.territory_inputs import Table, TerritoryInputs
    from scenarios import Scenario

#: Tolerance multipliers for the price of balance (None: no balance at all).
PRICE_SCALES = (None, 2.0, 1.0, 0.5)
#: Seconds per solve unless --time-limit says otherwise: a design always ends, with the best found and its gap.
DEFAULT_TIME_LIMIT = 120.0


def territories(
    units: Annotated[Path, typer.Option(help="units CSV: id, attributes, lat/lon, owner, locked")],
    reps: Annotated[Path, typer.Option(help="reps CSV: id, home_unit or lat/lon, weight")],
    out: Annotated[Path, typer.Option(help="folder for assignment.csv, summary.json and map.png")],
    distances: Annotated[Optional[Path], typer.Option(help="distance table CSV: from, to, distance")] = None,
    adjacency: Annotated[Optional[Path], typer.Option(help="adjacency CSV: unit, neighbor (for --contiguity)")] = None,
    balance: Annotated[list[str], typer.Option(help="ATTR:TOL, e.g. workload:0.1 or workload:10%; repeatable")] = [],  # noqa: B006
    cap: Annotated[list[str], typer.Option(help="ATTR:LIMIT, each rep's total at most LIMIT; repeatable")] = [],  # noqa: B006
    objective: Annotated[str, typer.Option(help="compactness, disruption, weighted, or an order such as compactness,disruption")] = "compactness",
    weight: Annotated[Optional[str], typer.Option(help="attribute weighting each unit's distance in compactness")] = None,
    disruption_attr: Annotated[Optional[str], typer.Option(help="attribute summed over moved units (default: count)")] = None,
    disruption_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="for weighted: share of disruption")] = 0.5,
    lex_slack: Annotated[float, typer.Option(min=0.0, help="lexicographic: let earlier objectives worsen by this fraction")] = 0.0,
    contiguity: Annotated[bool, typer.Option("--contiguity", help="keep each territory connected over --adjacency")] = False,
    nearest: Annotated[Optional[int], typer.Option(min=1, help="offer each unit only its K nearest reps (plus its owner)")] = None,
    time_limit: Annotated[float, typer.Option(min=0.0, help="seconds per solve (each objective stage, each price-of-balance re-solve)")] = DEFAULT_TIME_LIMIT,
    gap: Annotated[float, typer.Option(min=0.0, help="relative MIP gap to stop at")] = 1e-4,
    solver_log: Annotated[bool, typer.Option("--solver-log", help="show HiGHS's log")] = False,
    price: Annotated[bool, typer.Option("--price-of-balance/--no-price-of-balance", help="re-solve without balance and at 2, 1 and ½ times the tolerances")] = True,
    scenario: Annotated[Optional[str], typer.Option(help="score designs by simulating them from this base scenario (e.g. baseline)")] = None,
    lead_attr: Annotated[Optional[str], typer.Option(help="attribute that sets each territory's lead share (default: first balanced)")] = None,
    rep_role: Annotated[Optional[str], typer.Option(help="scenario role of the design's reps (default: the opportunity role)")] = None,
    replications: Annotated[int, typer.Option("--replications", "-n", min=1, help="replications per simulated design")] = 5,
    seed: Annotated[Optional[int], typer.Option(min=0, help="simulation seed (default: the scenario's)")] = None,
) -> None:
    """Assign units to reps: balanced, compact, minimally disruptive; explain the moves and score by simulation."""
    from optimizers.solve import SolveOptions
    from optimizers.territory_scoring import design_summary, simulated_totals

    spec = _spec(balance, cap, objective, weight, disruption_attr, disruption_share, contiguity, nearest, lex_slack)
    lead_attribute = lead_attr or (spec.balance[0].attribute if spec.balance else None)
    if scenario and lead_attribute is None:
        _fail("--scenario needs --lead-attr (or a --balance attribute) to set each territory's lead share")
    base = _base_scenario(scenario) if scenario else None
    attributes = tuple(dict.fromkeys(spec.attributes + ((lead_attribute,) if lead_attribute else ())))
    with edge_errors(), output_folder(out, "optimize territories") as files:
        inputs = _read(units, reps, distances, adjacency, attributes)
        options = SolveOptions(time_limit=time_limit, rel_gap=gap, log=solver_log, echo=_echo_to_stderr if solver_log else None)
        typer.echo(f"time limit {time_limit:g} s per solve" + (" (the default; --time-limit to change)" if time_limit == DEFAULT_TIME_LIMIT else ""))
        design = _design(inputs, spec, options, files, time_limit)
        files.csv("assignment.csv", design.moves.reset_index(), people=True)
        summary = design_summary(inputs, spec, design, time_limit)
        if price and spec.balance:
            from optimizers.territories import price_of_balance

            summary["price_of_balance"] = price_of_balance(inputs, spec, PRICE_SCALES, options)
        if base is not None:
            try:
                scores = _score(base, inputs, design, lead_attribute, replications, seed, rep_role)
            except typer.Exit:
                files.json("summary.json", summary)
                files.commit()  # the design stands without its scores
                raise
            files.csv("simulation.csv", scores, people=True)
            summary["simulation"] = {"scenario": base.name, "replications": replications, "by_design": simulated_totals(scores)}
        files.json("summary.json", summary)
        if inputs.has_coordinates:
            draw_map(inputs, design, files.stage("map.png"))
        written = files.commit()
    result = design.result
    today = summary["today"]
    before = f" (today {today['total_distance']:,.6g}, {len(today['balance_violations'])} bounds broken)" if today and today["total_distance"] is not None else ""
    stopped = " at the time limit" if result.termination == "time_limit" else ""
    typer.echo(
        f"{result.status}{stopped}: {', '.join(spec.objective)} {result.objective:,.6g} (gap {result.gap or 0:.2%}), "
        f"distance {design.compactness:,.6g}{before}, {int(design.moves['moved'].sum())} units moved, "
        f"built in {sum(s.build_seconds for s in design.solves):.2f} s, solved in {sum(s.solve_seconds for s in design.solves):.2f} s"
    )
    typer.echo(f"wrote {', '.join(str(path) for path in written)}")


def _echo_to_stderr(text: str) -> None:
    """Shows the solver's log as it comes (``--solver-log``)."""
    typer.echo(text, err=True, nl=False)


def _spec(
    balance: list[str], cap: list[str], objective: str, weight: str | None, disruption_attr: str | None,
    disruption_share: float, contiguity: bool, nearest: int | None, lex_slack: float,
) -> DesignSpec:
    """The design asked for, from the option texts."""
    from optimizers.territories import Balance, Cap, DesignSpec

    return DesignSpec(
        balance=tuple(Balance(name, tolerance) for name, tolerance in (_pair(text, "--balance", percent=True) for text in balance)),
        caps=tuple(Cap(name, limit) for name, limit in (_pair(text, "--cap") for text in cap)),
        objective=tuple(part.strip() for part in objective.split(",") if part.strip()),
        weight=weight,
        disruption_attribute=disruption_attr,
        disruption_share=disruption_share,
        contiguity=contiguity,
        nearest=nearest,
        lex_slack=lex_slack,
    )


def _base_scenario(name: str) -> Scenario:
    from scenarios import ScenarioError, load_scenario

    try:
        return load_scenario(name)
    except ScenarioError as error:
        _fail(*(f"{error.source}: {problem}" for problem in error.problems))


def _read(units: Path, reps: Path, distances: Path | None, adjacency: Path | None, attributes: tuple[str, ...]) -> TerritoryInputs:
    """The validated inputs; every problem is one line naming file, row and column, and exit code 2."""
    from optimizers.territory_inputs import InputError, read_inputs

    try:
        return read_inputs(
            _table(units), _table(reps), attributes, _table(distances) if distances else None, _table(adjacency) if adjacency else None
        )
    except InputError as error:
        _fail(*error.problems)


def _design(inputs: TerritoryInputs, spec: DesignSpec, options: SolveOptions, files: RunFiles, time_limit: float) -> Design:
    """The solved design; a design that cannot be asked for exits 2; one that cannot exist, or that the time limit
    stopped before any was found, writes why and exits 1."""
    from optimizers.territories import DesignError, DesignInfeasible, design_territories

    try:
        return design_territories(inputs, spec, options)
    except DesignError as error:
        _fail(str(error))
    except DesignInfeasible as error:
        status = error.result.status if error.result is not None and error.result.status != "infeasible" else "infeasible"
        solver = error.result.as_dict() if error.result else None
        files.json("summary.json", {"status": status, "explanation": str(error), "time_limit_seconds": time_limit, "solver": solver})
        files.commit()  # the explanation replaces an earlier design's files
        fail([f"{'infeasible: ' if status == 'infeasible' else ''}{error}"], code=1)


def _score(
    base: Scenario, inputs: TerritoryInputs, design: Design, lead_attribute: str, replications: int, seed: int | None, rep_role: str | None
) -> pd.DataFrame:
    """Today's design (when every unit has an owner) and the new one, simulated from the base scenario."""
    from optimizers.territory_scoring import compare_designs, replications_runner
    from scenarios import ScenarioError

    designs = {"optimized": design.loads[lead_attribute]}
    owners = inputs.units["owner"]
    if owners.notna().all():
        designs = {"today": inputs.units[lead_attribute].groupby(owners).sum().reindex(inputs.reps.index, fill_value=0.0), **designs}
    try:
        return compare_designs(base, designs, replications_runner(replications, seed), rep_role)
    except (ValueError, ScenarioError) as error:
        _fail(f"simulating the design from {base.name}: {error}")


def _table(path: Path) -> Table:
    from optimizers.territory_inputs import InputError, Table

    try:
        return Table.parse(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        _fail(f"{path}: no such file")
    except IsADirectoryError:
        _fail(f"{path}: is a folder, expected a CSV file")
    except OSError as error:
        _fail(f"{path}: cannot read ({error.strerror or error})")
    except UnicodeDecodeError:
        _fail(f"{path}: not a UTF-8 text file")
    except InputError as error:
        _fail(*error.problems)


def _pair(text: str, option: str, percent: bool = False) -> tuple[str, float]:
    """``ATTR:NUMBER`` (``NUMBER%`` allowed for tolerances)."""
    name, sep, raw = text.rpartition(":")
    try:
        if not sep or not name:
            raise ValueError
        value = float(raw[:-1]) / 100 if percent and raw.endswith("%") else float(raw)
    except ValueError:
        _fail(f"{option} {text!r}: expected ATTR:NUMBER, e.g. workload:0.1")
    if not math.isfinite(value) or value < 0:
        _fail(f"{option} {text!r}: the number must be finite and not negative")
    return name, value


def draw_map(inputs: TerritoryInputs, design: Design, path: Path) -> None:
    """Units coloured by rep (today's owners beside the design when known), homes or centres as stars, moved
    units ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = inputs.units
    panels = [("design", design.assignment)]
    if units["owner"].notna().all():
        panels.insert(0, ("today", units["owner"]))
    palette = plt.cm.tab10 if len(inputs.reps) <= 10 else plt.cm.tab20
    colours = {rep: palette(i % palette.N) for i, rep in enumerate(inputs.reps.index)}
    figure, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), squeeze=False)
    aspect = 1 / max(math.cos(math.radians(float(units["lat"].mean()))), 0.1)
    home_lat = design.centres.map(units["lat"]) if design.centres is not None else inputs.reps["lat"]
    home_lon = design.centres.map(units["lon"]) if design.centres is not None else inputs.reps["lon"]
    for axis, (title, owner) in zip(axes[0], panels):
        axis.scatter(units["lon"], units["lat"], c=[colours[rep] for rep in owner], s=18, linewidths=0)
        if title == "design":
            moved = design.moves["moved"].to_numpy()
            axis.scatter(units["lon"][moved], units["lat"][moved], facecolors="none", edgecolors="black", s=40, linewidths=0.6, label="moved")
            axis.scatter(home_lon, home_lat, marker="*", c=[colours[rep] for rep in home_lat.index], edgecolors="black", s=220, label="rep home / centre")
            axis.legend(loc="lower left", fontsize=8)
        axis.set_title(f"{title}: {len(inputs.reps)} territories, {len(units)} units")
        axis.set_aspect(aspect)
        axis.set_xlabel("longitude")
        axis.set_ylabel("latitude")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fail(*lines: str) -> NoReturn:
    fail(lines)
