"""The catalogue of candidate automation investments, and how an item becomes a tool in a scenario.

A catalogue (YAML, validated strictly) lists items: what each costs (one-time, monthly, per rep using it), when it
may start, how it is adopted, what it needs and what it rules out, and its ``effect``: one of the scenario's lever
kinds without the start, costs and adoption, which belong to the item. The effect models are derived from the
scenario's lever kinds, so a new kind is a catalogue effect at once and ranges are checked in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union, get_args

import numpy as np
from pydantic import Field, NonNegativeFloat, TypeAdapter, ValidationError, create_model, field_validator, model_validator

from engine.automation import lever_cost_by_month
from scenarios import Scenario, validate_scenario
from scenarios.base import Frozen
from scenarios.loading import InputError, describe_validation_error, read_yaml_mapping
from scenarios.model import AutomationLever, Probability, _month_key_error

_LEVER_KINDS = get_args(get_args(AutomationLever)[0])
#: Keys every lever kind shares: in a catalogue they are the item's, not its effect's.
ITEM_KEYS = set.intersection(*(set(kind.model_fields) for kind in _LEVER_KINDS)) - {"kind"}


def _effect_model(kind: type[Frozen]) -> type[Frozen]:
    """The lever kind's own fields (its effect), with their ranges, as a model of their own."""
    fields = {name: (info.annotation, info) for name, info in kind.model_fields.items() if name not in ITEM_KEYS}
    return create_model(f"{kind.__name__}Effect", __base__=Frozen, __doc__=kind.__doc__, **fields)


Effect = Annotated[Union[tuple(_effect_model(kind) for kind in _LEVER_KINDS)], Field(discriminator="kind")]
_LEVER = TypeAdapter(AutomationLever)


class CatalogueError(InputError):
    """A catalogue that cannot be used; each problem names the item and key."""


class Item(Frozen):
    """One candidate investment."""

    description: str = ""
    one_time_cost: NonNegativeFloat = 0.0
    monthly_cost: NonNegativeFloat = 0.0
    monthly_cost_per_rep: NonNegativeFloat = Field(default=0.0, description="per rep on staff, times the adoption")
    earliest_start: str | None = Field(default=None, description="first month it may start, YYYY-MM")
    start_months: list[str] | None = Field(default=None, min_length=1, description="the only months it may start")
    adoption: list[Probability] = Field(default_factory=lambda: [1.0], min_length=1)
    effect: Effect
    requires: list[str] = Field(default_factory=list, description="items that must have started by its start")
    excludes: list[str] = Field(default_factory=list, description="items that cannot be chosen with it")

    @model_validator(mode="before")
    @classmethod
    def _item_keys_on_the_item(cls, data: Any) -> Any:
        """Start, costs and adoption are the item's: say so when they are written inside its effect."""
        effect = data.get("effect") if isinstance(data, dict) else None
        misplaced = sorted(ITEM_KEYS & set(effect)) if isinstance(effect, dict) else []
        if misplaced:
            raise ValueError(f"effect.{misplaced[0]}: belongs to the item, not to its effect")
        return data

    @field_validator("earliest_start")
    @classmethod
    def _month(cls, key: str | None) -> str | None:
        problem = _month_key_error(key) if key is not None else None
        if problem:
            raise ValueError(problem)
        return key

    @field_validator("start_months")
    @classmethod
    def _months(cls, keys: list[str] | None) -> list[str] | None:
        problems = [problem for key in keys or [] if (problem := _month_key_error(key))]
        if problems:
            raise ValueError("; ".join(problems))
        return keys

    def lever(self, start_month: str) -> dict[str, Any]:
        """The item as a scenario ``automation`` entry starting in ``start_month``."""
        item_keys = self.model_dump(include=ITEM_KEYS - {"start_month"})
        return {**self.effect.model_dump(), "start_month": start_month, **item_keys}


class Catalogue(Frozen):
    """Candidate investments by name, with their dependencies and exclusions checked."""

    name: str = ""
    description: str = ""
    items: dict[str, Item] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> "Catalogue":
        errors: list[str] = []
        names = sorted(self.items)
        for name, item in self.items.items():
            for key in ("requires", "excludes"):
                for other in getattr(item, key):
                    if other == name:
                        errors.append(f"items.{name}.{key}: an item cannot name itself")
                    elif other not in self.items:
                        errors.append(f"items.{name}.{key}: unknown item {other!r}; expected one of {names}")
        if not errors:
            errors.extend(self._check_cycles())
        if not errors:
            errors.extend(self._check_exclusions())
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def _check_cycles(self) -> list[str]:
        errors, done = [], set()

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                cycle = path[path.index(name):] + [name]
                errors.append(f"items.{cycle[0]}.requires: circular dependency {' → '.join(cycle)}")
                return
            if name in done:
                return
            for other in self.items[name].requires:
                visit(other, path + [name])
            done.add(name)

        for name in self.items:
            visit(name, [])
        return errors[:1]

    def _check_exclusions(self) -> list[str]:
        errors = []
        for name in self.items:
            together = [name, *self.prerequisites(name)]
            clashes = sorted((a, b) for a in together for b in together if a < b and self.excluded(a, b))
            for a, b in clashes:
                errors.append(f"items.{name}.requires: needs {a!r} and {b!r} together, but they exclude each other")
        return errors

    def prerequisites(self, name: str) -> list[str]:
        """Every item ``name`` needs, directly or through others, in catalogue order."""
        needed: set[str] = set()
        stack = list(self.items[name].requires)
        while stack:
            other = stack.pop()
            if other not in needed:
                needed.add(other)
                stack.extend(self.items[other].requires)
        return [other for other in self.items if other in needed]

    def excluded(self, a: str, b: str) -> bool:
        """Whether two items rule each other out (either may say so)."""
        return b in self.items[a].excludes or a in self.items[b].excludes


def load_catalogue(name_or_path: str | Path) -> Catalogue:
    """A catalogue read from a YAML file, or a shipped one by name; ``CatalogueError`` names the item and key."""
    source, data = read_yaml_mapping(name_or_path, "optimizers", "catalogues", "catalogue", CatalogueError)
    try:
        return Catalogue.model_validate(data)
    except ValidationError as error:
        raise CatalogueError(source, describe_validation_error(error)) from None


# ----- the catalogue against a scenario -----


def start_options(catalogue: Catalogue, scenario: Scenario, step: int, source: str = "catalogue") -> dict[str, list[int]]:
    """Each item's candidate start months (horizon indices); a ``CatalogueError`` names items that do not fit the
    scenario (an unknown funnel step, a name the scenario already uses).

    An item with ``start_months`` may start in those within the horizon; otherwise in its earliest allowed month and
    then every ``step`` months on the scenario's grid (``step`` 3 from a January start: quarter starts). Starts
    before the item's prerequisites can have started are dropped; an item left without any cannot be chosen.
    """
    errors: list[str] = []
    horizon = scenario.horizon_months
    steps = scenario.funnel_steps
    own: dict[str, list[int]] = {}
    for name, item in catalogue.items.items():
        if name in scenario.automation:
            errors.append(f"items.{name}: the scenario already has an automation tool of that name")
        step_name = getattr(item.effect, "step", None)
        if step_name is not None and step_name not in steps:
            errors.append(f"items.{name}.effect.step: unknown funnel step {step_name!r} in scenario {scenario.name!r}; expected one of {list(steps)}")
        earliest = 0 if item.earliest_start is None else max(0, scenario.month_index(item.earliest_start))
        if item.start_months is not None:
            own[name] = sorted({m for m in map(scenario.month_index, item.start_months) if earliest <= m < horizon})
        else:
            own[name] = [m for m in range(earliest, horizon) if m == earliest or m % step == 0]
    if errors:
        raise CatalogueError(source, errors)
    starts: dict[str, list[int]] = {}

    def feasible(name: str) -> list[int]:
        if name not in starts:
            first = max((min(feasible(other), default=horizon) for other in catalogue.items[name].requires), default=0)
            starts[name] = [m for m in own[name] if m >= first]
        return starts[name]

    return {name: feasible(name) for name in catalogue.items}


def quarter_labels(scenario: Scenario) -> list[str]:
    """The calendar quarter (``2027Q1``) of each horizon month."""
    labels = [scenario.month_label(m) for m in range(scenario.horizon_months)]
    return [f"{label[:4]}Q{(int(label[5:7]) - 1) // 3 + 1}" for label in labels]


def by_quarter(quarters: list[str], monthly: np.ndarray) -> dict[str, float]:
    """Monthly amounts summed by quarter label, in calendar order."""
    out: dict[str, float] = {}
    for quarter, value in zip(quarters, monthly):
        out[quarter] = out.get(quarter, 0.0) + float(value)
    return out


def item_cost(scenario: Scenario, item: Item, start: int, staffed: np.ndarray) -> np.ndarray:
    """What an item started in horizon month ``start`` costs each month: the engine's rule, with ``staffed`` the
    expected reps on staff at each month end."""
    lever = _LEVER.validate_python(item.lever(scenario.month_label(start)))
    return lever_cost_by_month(scenario, lever, staffed)


def apply_portfolio(scenario: Scenario, catalogue: Catalogue, starts: dict[str, int]) -> Scenario:
    """The scenario with the chosen items (name → horizon start month) added to its automation, validated again."""
    data = scenario.model_dump(mode="json")
    chosen = {name: catalogue.items[name].lever(scenario.month_label(start)) for name, start in starts.items()}
    data["automation"] = {**data.get("automation", {}), **chosen}
    label = ", ".join(f"{name}@{scenario.month_label(start)}" for name, start in starts.items()) or "nothing"
    return validate_scenario(data, f"{scenario.name} with {label}")
