"""Finding, reading and overriding scenarios, with errors that name the file and the key path."""

from __future__ import annotations

import copy
import json
import reprlib
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from pydantic import ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from scenarios.model import Scenario
from scenarios.snapshot import SnapshotError, read_snapshot

#: Top-level maps of named entries: an override may change an entry but not invent one.
NAMED_COLLECTIONS = {"segments": "segment", "territories": "territory", "lead_sources": "lead source", "roles": "role", "automation": "automation lever"}


class InputError(ValueError):
    """An input file that cannot be used; ``problems`` holds one line per problem, each naming its key, row or
    column. Each kind of input has its own subclass, so a command catches exactly what it expects."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))


class ScenarioError(InputError):
    """A scenario that cannot be used; each problem names its key path."""


#: Nesting deeper than this is refused (scenarios nest about 6 deep), so no reader recurses without bound.
MAX_YAML_DEPTH = 64
#: Aliases may not make a document larger than this many nodes once expanded ("billion laughs").
MAX_YAML_NODES = 1_000_000
#: How much of a value any message echoes.
_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxstring, _ECHO.maxother, _ECHO.maxlong = 2, 60, 60, 40
_ECHO.maxdict = _ECHO.maxlist = _ECHO.maxtuple = _ECHO.maxset = 4


def echo(value: Any, limit: int = 100) -> str:
    """A short ``repr`` of ``value`` for a message: bounded in length and depth, whatever the value's size."""
    text = _ECHO.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SafeYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with limits, for every YAML the project reads: nesting at most ``MAX_YAML_DEPTH``,
    aliases expanding to at most ``MAX_YAML_NODES`` nodes, no duplicated key, and values that cannot be built
    (an impossible date, an integer of 5,000 digits) as YAML errors with their line instead of Python errors."""

    def __init__(self, stream: Any):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ComposerError(None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ComposerError(None, None, f"aliases expand the document beyond {MAX_YAML_NODES:,} values", node.start_mark)
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, OverflowError, TypeError) as error:
            raise ConstructorError(None, None, f"cannot read {echo(getattr(node, 'value', ''), 60)}: {error}", node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is not None:
                raise ConstructorError(None, None, f"duplicate key {echo(key, 60)} (first on line {first + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (each shared node counted once per use)."""
    if id(node) not in sizes:
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [item for pair in node.value for item in pair]
        sizes[id(node)] = min(1 + sum(_expanded_size(child, sizes) for child in children), MAX_YAML_NODES + 1)
    return sizes[id(node)]


def safe_yaml(text: str) -> Any:
    """``text`` read as YAML with ``SafeYamlLoader``; raises ``yaml.YAMLError`` naming the line."""
    loader = SafeYamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_problem(problem: yaml.YAMLError) -> str:
    """A YAML error in one line: where it is and what is wrong."""
    mark = getattr(problem, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    what = " ".join(str(getattr(problem, "problem", None) or problem).split())
    return f"{where}not valid YAML ({what[:200]})"


def shipped_scenarios() -> list[str]:
    """Names of the example scenarios shipped with the package."""
    return shipped_names("scenarios", "library")


def shipped_names(package: str, folder: str) -> list[str]:
    """Names of the YAML files shipped in ``package/folder``, without their suffix."""
    shipped = resources.files(package) / folder
    return sorted(entry.name.removesuffix(".yaml") for entry in shipped.iterdir() if entry.name.endswith(".yaml"))


#: Builds the error a YAML reader raises: (source, one line per problem).
ErrorType = Callable[[str, list[str]], Exception]


def read_yaml_mapping(name_or_path: str | Path, package: str, folder: str, kind: str,
                      error: ErrorType = ScenarioError) -> tuple[str, dict[str, Any]]:
    """The top-level mapping of a YAML file given by path, or by the name of one shipped in ``package/folder``
    (read with ``yaml.safe_load``); returns (source label, data). Problems raise ``error`` naming the file, and
    the line and column of bad YAML; ``kind`` (``scenario``, ``mapping``…) words the messages."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise error(str(path), ["no such file"])
        try:
            source, raw = str(path), path.read_bytes()
        except OSError as problem:
            raise error(str(path), [f"cannot read ({problem.strerror or problem})"]) from None
    else:
        entry = resources.files(package) / folder / f"{name_or_path}.yaml"
        if not entry.is_file():
            raise error(str(name_or_path), [f"not a file and not a shipped {kind}; shipped: {', '.join(shipped_names(package, folder))}"])
        source, raw = f"{name_or_path} (shipped)", entry.read_bytes()
    try:
        data = safe_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError as problem:
        raise error(source, [f"not valid UTF-8 at byte {problem.start}"]) from None
    except yaml.YAMLError as problem:
        raise error(source, [yaml_problem(problem)]) from None
    if not isinstance(data, dict):
        raise error(source, [f"expected a mapping of {kind} keys at the top level"])
    return source, data


def read_scenario_data(name_or_path: str | Path) -> tuple[str, dict[str, Any]]:
    """The raw mapping of a scenario file, found by path or by the name of a shipped scenario."""
    source, data = read_yaml_mapping(name_or_path, "scenarios", "library", "scenario")
    path = Path(name_or_path)
    base = path.parent if path.is_file() else Path.cwd()
    data = _anchor_pipeline(data, base)
    if "calibration" in data:
        data = _merge_calibration(data, base, source)
    return source, data


def _anchor_pipeline(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``initial_state.pipeline`` made absolute: a relative path is relative to the file that names it."""
    state = data.get("initial_state")
    if not isinstance(state, dict) or not isinstance(state.get("pipeline"), str):
        return data
    return {**data, "initial_state": {**state, "pipeline": str((base / state["pipeline"]).absolute())}}


def _merge_calibration(data: dict[str, Any], base: Path, source: str) -> dict[str, Any]:
    """The scenario with the fragment of its ``calibration:`` file beneath it: keys the scenario gives win."""
    data = dict(data)
    reference = data.pop("calibration")
    path = base / str(reference)
    try:
        calibration = json.loads(path.read_text(encoding="utf-8"))
        fragment = calibration["scenario"]
    except FileNotFoundError:
        raise ScenarioError(source, [f"calibration: no such file {str(path)!r}"]) from None
    except OSError as error:
        raise ScenarioError(source, [f"calibration: cannot read {str(path)!r} ({error.strerror or error})"]) from None
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise ScenarioError(source, [f"calibration: {path} is not a calibration file with a 'scenario' key ({echo(error, 200)})"]) from None
    if not isinstance(fragment, dict):
        raise ScenarioError(source, [f"calibration: {path} is not a calibration file with a 'scenario' mapping"])
    merged = _deep_merge(_anchor_pipeline(fragment, path.parent), data)
    draws = calibration.get("parameter_draws") or []
    if draws and "parameter_draws" not in data:  # what the scenario gives itself is not drawn
        merged["parameter_draws"] = [_without_paths(draw, _paths(data)) for draw in draws]
    return merged


def _paths(data: Any, prefix: str = "") -> list[str]:
    """The key paths of a mapping's values (``funnel.sql_rate.smb``), leaves only."""
    if not isinstance(data, dict):
        return [prefix.removesuffix(".")]
    return [path for key, value in data.items() for path in _paths(value, f"{prefix}{key}.")]


def _without_paths(draw: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A parameter draw less every key that one of ``paths`` sets, contains or lies in."""
    paths = list(paths)
    return {key: value for key, value in draw.items()
            if not any(key == p or key.startswith(p + ".") or p.startswith(key + ".") for p in paths)}


def _deep_merge(under: Any, over: Any) -> Any:
    """``over`` laid on ``under``: mappings merge key by key, anything else in ``over`` replaces."""
    if isinstance(under, dict) and isinstance(over, dict):
        merged = dict(under)
        for key, value in over.items():
            merged[key] = _deep_merge(under.get(key), value) if key in under else value
        return merged
    return over


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], source: str = "--set") -> dict[str, Any]:
    """A copy of ``data`` with each ``dotted.key.path=value`` set; values are read as YAML scalars or lists. A key
    set here is no longer drawn from ``parameter_draws``: what the user says wins over what was fitted."""
    result = copy.deepcopy(data)
    for override in overrides:
        path, sep, raw = override.partition("=")
        if not sep or not path:
            raise ScenarioError(source, [f"{echo(override)}: expected KEY.PATH=VALUE"])
        try:
            value = safe_yaml(raw) if raw.strip() else raw
        except yaml.YAMLError as problem:
            raise ScenarioError(source, [f"{echo(path)}: cannot read value {echo(raw)} ({yaml_problem(problem)})"]) from None
        keys = path.split(".")
        collection = result.get(keys[0])
        if keys[0] in NAMED_COLLECTIONS and len(keys) > 2 and isinstance(collection, dict) and keys[1] not in collection:
            raise ScenarioError(source, [f"{'.'.join(keys[:2])}: no such {NAMED_COLLECTIONS[keys[0]]}; expected one of {sorted(collection)}"])
        _set_path(result, keys, value, source)
        if isinstance(result.get("parameter_draws"), list) and keys[0] != "parameter_draws":
            result["parameter_draws"] = [_without_paths(draw, [path]) if isinstance(draw, dict) else draw
                                         for draw in result["parameter_draws"]]
    return result


def with_parameter_draw(scenario: Scenario, replication: int) -> Scenario:
    """The scenario a replication runs: with ``parameter_uncertainty`` and parameter draws, draw ``replication`` mod
    their number applied; the scenario itself otherwise. Draw 0 is checked when a scenario is loaded, and every draw
    of a calibration sets the same keys, so this does not fail on a loaded scenario."""
    if not scenario.parameter_uncertainty or not scenario.parameter_draws:
        return scenario
    data = scenario.model_dump(exclude={"parameter_draws"})
    for path, value in scenario.parameter_draws[replication % len(scenario.parameter_draws)].items():
        _set_path(data, path.split("."), copy.deepcopy(value), "parameter_draws")
    data["initial_state"]["snapshot"] = scenario.initial_state.snapshot  # read once, at loading
    return Scenario.model_validate(data)


def _set_path(data: Any, keys: list[str], value: Any, source: str) -> None:
    node = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ScenarioError(source, [f"{where}: expected a list index below {len(node)}"])
            index = int(key)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                if not isinstance(node.get(key), (dict, list)):
                    node[key] = {}
                node = node[key]
        else:
            raise ScenarioError(source, [f"{'.'.join(keys[:depth])}: is a value, cannot set {where}"])


def validate_scenario(data: dict[str, Any], source: str = "scenario") -> Scenario:
    """A Scenario from a raw mapping, or a ScenarioError listing every problem by key path; a snapshot named by
    ``initial_state.pipeline`` is read here (a relative path from the working directory)."""
    state = data.get("initial_state")
    if isinstance(state, dict) and isinstance(state.get("pipeline"), str):
        try:
            snapshot = read_snapshot(Path(state["pipeline"]))
        except SnapshotError as error:
            raise ScenarioError(source, [f"initial_state.pipeline: {line}" for line in str(error).splitlines()]) from None
        data = {**data, "initial_state": {**state, "snapshot": snapshot, "pipeline_sha256": snapshot.sha256}}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as error:
        raise ScenarioError(source, describe_validation_error(error)) from None
    _check_parameter_draws(scenario, source)
    return scenario


def _check_parameter_draws(scenario: Scenario, source: str) -> None:
    """Every draw sets the same keys, and the first makes a valid scenario."""
    draws = scenario.parameter_draws
    if not draws:
        return
    unlike = [i for i, draw in enumerate(draws) if draw.keys() != draws[0].keys()]
    if unlike:
        raise ScenarioError(source, [f"parameter_draws.{unlike[0]}: sets other keys than parameter_draws.0"])
    try:
        with_parameter_draw(scenario.model_copy(update={"parameter_uncertainty": True}), 0)
    except (ValidationError, ScenarioError) as error:
        problems = describe_validation_error(error) if isinstance(error, ValidationError) else error.problems
        raise ScenarioError(source, [f"parameter_draws.0: {problem}" for problem in problems]) from None


def load_scenario(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read a scenario by path or shipped name, apply ``--set`` overrides and validate it."""
    source, data = read_scenario_data(name_or_path)
    return validate_scenario(apply_overrides(data, overrides), source)


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per pydantic validation problem, each starting with its key path (a model-level check's
    message, which may hold several lines, as its lines)."""
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "value_error" and not path:
            problems.extend(message.split("\n"))
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] not in {"missing", "value_error"}:
            message = f"{message} (got {echo(item['input'])})"
        problems.append(f"{path}: {message}" if path else message)
    return problems

