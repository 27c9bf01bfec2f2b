"""Sweep definitions: a base scenario, factors over ``--set`` key paths, replications and seed, and their cells.

A sweep file is YAML, validated strictly. Every cell is checked (overrides applied, scenario validated) before
anything runs, so an unknown key path or a value out of range is an error naming the sweep file and the factor.

```yaml
name: hiring_timing
scenario: baseline                      # a shipped scenario or a path, relative to this file
set: [horizon_months=12]                # overrides every cell shares
factors:
  hire_month: ["2027-02", "2027-05"]   # fills {hire_month} in another factor's key, sets nothing itself
  ae_hires:
    key: roles.ae.hiring_plan.{hire_month}
    values: [2, 4]
  territories.north.lead_share: {range: {start: 0.2, stop: 0.4, step: 0.1}}
  roles.sdr.prospecting_share: {uniform: [0.05, 0.2]}     # sampled: needs `sample`
sample: {method: latin_hypercube, n: 8}
replications: 10
seed: 1
max_cells: 500
```

Listed and range factors form a grid; sampled factors (``uniform``, ``integers``) are drawn jointly, ``sample.n``
points, seeded, and every point is crossed with the grid.
"""

from __future__ import annotations

import itertools
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from scipy.stats import qmc

from scenarios import Scenario, ScenarioError, apply_overrides, read_scenario_data, validate_scenario
from scenarios.loading import InputError, describe_validation_error, read_yaml_mapping

DEFAULT_MAX_CELLS = 500


class SweepError(InputError):
    """A sweep that cannot run; each problem names its key."""


class Range(BaseModel):
    """``start``, ``start + step``, … up to and including ``stop`` (within rounding)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    start: float = Field(description="the first level")
    stop: float = Field(description="the last level, included when the steps reach it")
    step: float = Field(description="the gap between levels; not 0, and its sign must lead from start to stop")

    @field_validator("step")
    @classmethod
    def _step(cls, step: float) -> float:
        if step == 0:
            raise ValueError("must not be 0")
        return step

    @model_validator(mode="after")
    def _not_empty(self) -> "Range":
        if (self.stop - self.start) / self.step < 0:
            raise ValueError(f"empty range: from {self.start:g} to {self.stop:g} by {self.step:g}")
        return self

    @property
    def count(self) -> int:
        return math.floor((self.stop - self.start) / self.step + 1e-9) + 1

    def values(self) -> list[float | int]:
        values = [round(self.start + i * self.step, 12) for i in range(self.count)]
        return [int(v) for v in values] if all(float(v).is_integer() for v in (self.start, self.step)) else values


class Factor(BaseModel):
    """One factor: the key path it sets and its levels, listed, as a range, or sampled."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    key: str | None = Field(default=None, description="--set key path; default: the factor's name; may hold {factor}")
    values: list[Any] | None = Field(default=None, description="the levels, listed (a factor written as a plain list is this)")
    range: Range | None = None
    uniform: tuple[float, float] | None = Field(default=None, description="sampled: [low, high], drawn uniformly; needs sample")
    integers: tuple[int, int] | None = Field(default=None, description="sampled: [low, high] whole numbers, both included; needs sample")

    @model_validator(mode="after")
    def _one_kind(self) -> "Factor":
        given = [kind for kind in ("values", "range", "uniform", "integers") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of values, range, uniform, integers (got {', '.join(given) or 'none'})")
        if self.values is not None and not self.values:
            raise ValueError("values: empty factor list")
        bounds = self.uniform or self.integers
        if bounds is not None and bounds[0] > bounds[1]:
            raise ValueError(f"bounds {list(bounds)}: low is above high")
        return self

    @property
    def sampled(self) -> bool:
        return self.uniform is not None or self.integers is not None

    def size(self) -> int:
        """How many levels a grid factor has, without listing a range."""
        return len(self.values) if self.values is not None else self.range.count  # type: ignore[union-attr]

    def levels(self) -> list[Any]:
        """The listed or ranged levels (grid factors only)."""
        return self.values if self.values is not None else self.range.values()  # type: ignore[union-attr]

    def draw(self, u: np.ndarray) -> list[float | int]:
        """Levels from uniform numbers in [0, 1) (sampled factors only)."""
        if self.integers is not None:
            low, high = self.integers
            return [int(min(high, low + math.floor(x * (high - low + 1)))) for x in u]
        low, high = self.uniform  # type: ignore[misc]
        return [float(low + x * (high - low)) for x in u]


class Sample(BaseModel):
    """How sampled factors are drawn: plain random or Latin-hypercube points, seeded."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    method: Literal["random", "latin_hypercube"] = Field(
        default="latin_hypercube", description="latin_hypercube: one point in each stratum of every sampled factor"
    )
    n: int = Field(ge=1, description="points drawn, each crossed with the grid of listed and ranged factors")
    seed: int | None = Field(default=None, ge=0, description="default: the sweep's seed")


class SweepSpec(BaseModel):
    """A sweep file as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(description="label")
    description: str = Field(default="", description="label")
    scenario: str = Field(description="the base scenario: a shipped one's name, or a path relative to the sweep file")
    set: list[str] = Field(default=[], description="KEY.PATH=VALUE overrides every cell shares")
    factors: dict[str, Factor] = Field(min_length=1)
    sample: Sample | None = None
    replications: int = Field(default=10, ge=1, description="replications per cell")
    seed: int | None = Field(default=None, ge=0, description="default: the scenario's")
    max_cells: int = Field(default=DEFAULT_MAX_CELLS, ge=1, description="refuse bigger designs (--max-cells overrides)")

    @field_validator("factors", mode="before")
    @classmethod
    def _lists_are_values(cls, factors: Any) -> Any:
        if isinstance(factors, dict):
            return {name: {"values": spec} if isinstance(spec, list) else spec for name, spec in factors.items()}
        return factors

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        problems = []
        for name, factor in self.factors.items():
            for placeholder in placeholders(factor.key or name):
                if placeholder not in self.factors:
                    problems.append(f"factors.{name}.key: {{{placeholder}}} names no factor")
                elif placeholder == name:
                    problems.append(f"factors.{name}.key: refers to itself")
        if any(f.sampled for f in self.factors.values()) and self.sample is None:
            problems.append("sample: required when a factor is uniform or integers ({method: latin_hypercube, n: 10})")
        if self.sample is not None and not any(f.sampled for f in self.factors.values()):
            problems.append("sample: no factor is uniform or integers")
        if problems:
            raise ValueError("\n".join(problems))
        return self


@dataclass(frozen=True)
class Cell:
    """One point of the design: its levels by factor, the overrides they make and the validated scenario."""

    index: int
    levels: dict[str, Any]
    overrides: tuple[str, ...]
    scenario: Scenario


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its definition, where it came from, the seed it runs with and its cells."""

    spec: SweepSpec
    source: str
    seed: int
    cells: list[Cell]


def placeholders(key: str) -> list[str]:
    """The ``{factor}`` names in a key path."""
    return [field for _, field, _, _ in string.Formatter().parse(key) if field]


def format_value(value: Any) -> str:
    """A level written as ``--set`` reads it back (YAML flow style)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).strip().removesuffix("...").strip()


def load_sweep(name_or_path: str | Path, max_cells: int | None = None) -> Sweep:
    """Read a sweep file (by path, or by the name of a shipped one), validate it and expand it: every cell's
    scenario is built and validated before returning."""
    source, data = read_yaml_mapping(name_or_path, "experiments", "sweeps", "sweep", SweepError)
    path = Path(name_or_path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as error:
        raise SweepError(source, describe_validation_error(error)) from None
    limit = spec.max_cells if max_cells is None else max_cells
    count = math.prod(f.size() for f in spec.factors.values() if not f.sampled) * (spec.sample.n if spec.sample else 1)
    if count > limit:
        raise SweepError(source, [f"the design has {count:,} cells, more than the maximum of {limit:,} (max_cells, or --max-cells)"])
    designs = design(spec)
    base_path = (path.parent if path.is_file() else Path.cwd()) / spec.scenario
    try:
        base_source, base = read_scenario_data(base_path if base_path.suffix in {".yaml", ".yml"} or base_path.exists() else spec.scenario)
        seed = validate_scenario(apply_overrides(base, spec.set, f"{source}: set"), base_source).seed if spec.seed is None else spec.seed
    except ScenarioError as error:
        raise SweepError(source, [f"scenario {error.source}: {problem}" for problem in error.problems]) from None
    cells, problems = [], {}
    for index, levels in enumerate(designs):
        overrides = (*spec.set, f"seed={seed}", *cell_overrides(spec, levels))
        try:
            scenario = validate_scenario(apply_overrides(base, overrides), base_source)
        except ScenarioError as error:
            for problem in error.problems:
                problems.setdefault(problem, describe_levels(levels))
            continue
        cells.append(Cell(index, levels, overrides, scenario))
    if problems:
        raise SweepError(source, [f"{problem} (first in cell {where})" for problem, where in problems.items()])
    return Sweep(spec, source, seed, cells)


def design(spec: SweepSpec) -> list[dict[str, Any]]:
    """Levels of every cell: the grid of listed and ranged factors, crossed with the sampled points."""
    grid = {name: f.levels() for name, f in spec.factors.items() if not f.sampled}
    sampled = {name: f for name, f in spec.factors.items() if f.sampled}
    points: list[dict[str, Any]] = [{}]
    if sampled and spec.sample is not None:
        seed = spec.sample.seed if spec.sample.seed is not None else spec.seed
        if spec.sample.method == "latin_hypercube":
            u = qmc.LatinHypercube(d=len(sampled), seed=np.random.default_rng(seed)).random(spec.sample.n)
        else:
            u = np.random.default_rng(seed).random((spec.sample.n, len(sampled)))
        columns = {name: f.draw(u[:, j]) for j, (name, f) in enumerate(sampled.items())}
        points = [{name: columns[name][i] for name in sampled} for i in range(spec.sample.n)]
    combos = itertools.product(*grid.values())
    return [dict(zip(grid, combo)) | point for combo in combos for point in points]


def cell_overrides(spec: SweepSpec, levels: dict[str, Any]) -> list[str]:
    """``KEY=VALUE`` for every factor that sets a key (a factor named in another's key only fills it in)."""
    fillers = {p for name, f in spec.factors.items() for p in placeholders(f.key or name)}
    text = {name: format_value(value) for name, value in levels.items()}
    return [
        f"{(f.key or name).format(**text)}={text[name]}" for name, f in spec.factors.items() if name not in fillers
    ]


def describe_levels(levels: dict[str, Any]) -> str:
    """``name=value, …`` for messages."""
    return ", ".join(f"{name}={format_value(value)}" for name, value in levels.items())
