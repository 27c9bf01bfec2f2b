"""The reference pages, generated from the code so they cannot drift from it.

File formats come from their pydantic models (key paths, types, defaults, limits, descriptions and docstrings);
the command line from the typer app, walked as click commands. Each ``*_page`` function returns a page's markdown;
``gen_pages.py`` writes them while ``mkdocs build`` runs, and ``tests/test_docs.py`` calls them directly.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from typing import Any, Literal, Union

import annotated_types
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

#: A key of a user-named entry (a segment, a role, a factor…) in a key path.
NAME = "<name>"
#: An item of a list in a key path.
ITEM = "[]"


@dataclasses.dataclass(frozen=True)
class KeyRow:
    """One key of a file format: its dotted path, type, default and description."""

    path: str
    type: str
    default: str
    description: str


# ----- file formats, from pydantic models -----


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The annotation without ``Annotated``, and the constraints it carried."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        annotation, metadata = args[0], metadata + list(args[1:])
    flat: list[Any] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return annotation, flat


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _discriminator(variants: list[Any]) -> str | None:
    """The field whose ``Literal`` value tells the union's models apart, if they all have one."""
    if not variants or not all(_is_model(v) for v in variants):
        return None
    common = set.intersection(*(set(v.model_fields) for v in variants))
    for name in sorted(common):
        if all(typing.get_origin(v.model_fields[name].annotation) is Literal for v in variants):
            return name
    return None


def _constraints(metadata: list[Any]) -> str:
    words = {annotated_types.Ge: "≥", annotated_types.Gt: ">", annotated_types.Le: "≤", annotated_types.Lt: "<"}
    parts = []
    for item in metadata:
        for kind, sign in words.items():
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, dataclasses.fields(item)[0].name)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"at least {item.min_length}")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"at most {item.max_length}")
    return f" ({', '.join(parts)})" if parts else ""


def type_text(annotation: Any, shared: dict[str, str] | None = None) -> str:
    """A type in the words of a file's author: ``number (≥ 0)``, ``map of name → …``, ``one of `a`, `b```."""
    shared = shared or {}
    annotation, metadata = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_union(annotation):
        members = [a for a in args if a is not type(None)]
        variants = [_unwrap(a)[0] for a in members]
        key = _discriminator(variants) if len(variants) > 1 else None
        if key in shared:
            text = shared[key]
        elif key:
            text = "a mapping with " + ", ".join(f"`{key}: {typing.get_args(v.model_fields[key].annotation)[0]}`" for v in variants)
        else:
            text = " or ".join(type_text(a, shared) for a in members)
        return text + _constraints(metadata) + (", or null" if len(members) < len(args) else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is dict:
        return f"map of name → {type_text(args[1], shared)}{_constraints(metadata)}"
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"[{', '.join(type_text(a, shared) for a in args)}]"
        return f"list of {type_text(args[0], shared)}{_constraints(metadata)}"
    if _is_model(annotation):
        return "mapping"
    names = {bool: "true/false", int: "integer", float: "number", str: "text", Any: "any value"}
    name = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return f"{name}{_constraints(metadata)}"


def _annotation(field: FieldInfo) -> Any:
    """A field's type with the constraints pydantic keeps beside it (``Field(ge=0)``) put back on it."""
    return typing.Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined:
        return ""
    if isinstance(value, BaseModel):
        return "the defaults below"
    return f"`{json.dumps(to_jsonable_python(value), ensure_ascii=False)}`"


def _first_paragraph(text: str | None) -> str:
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def _containers(annotation: Any, path: str) -> tuple[Any, str]:
    """The element type under dicts and lists (and optionality), and the key path down to it."""
    while True:
        annotation, _ = _unwrap(annotation)
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if _is_union(annotation) and type(None) in args and len(args) == 2:
            annotation = next(a for a in args if a is not type(None))
        elif origin is dict:
            annotation, path = args[1], f"{path}.{NAME}"
        elif origin is list:
            annotation, path = args[0], f"{path}{ITEM}"
        else:
            return annotation, path


def key_rows(model: type[BaseModel], prefix: str = "", shared: dict[str, str] | None = None) -> list[KeyRow]:
    """Every key a model accepts, depth first, nested models and each variant of a tagged union included.

    A union whose tag is a key of ``shared`` (such as ``dist`` for distributions) is a leaf, described elsewhere.
    """
    shared = shared or {}
    rows: list[KeyRow] = []
    for name, field in model.model_fields.items():
        if field.exclude:  # set by the loader, not written by users (the snapshot's rows once read)
            continue
        path = f"{prefix}{name}"
        element, inner = _containers(field.annotation, path)
        nested = _unwrap(element)[0]
        description = field.description or ""
        if _is_model(nested) and not description:
            description = _first_paragraph(nested.__doc__)
        rows.append(KeyRow(path, type_text(_annotation(field), shared), _default(field), description))
        if _is_model(nested):
            rows.extend(key_rows(nested, f"{inner}.", shared))
        elif _is_union(nested):
            variants = [_unwrap(a)[0] for a in typing.get_args(nested) if a is not type(None)]
            tag = _discriminator(variants) if len(variants) > 1 else None
            if tag and tag not in shared:
                rows.extend(_variant_rows(variants, tag, f"{inner}.", shared))
            elif not tag:  # an untagged union: the keys of each model it may be, each once
                listed = {row.path for row in rows}
                for variant in filter(_is_model, variants):
                    new = [row for row in key_rows(variant, f"{inner}.", shared) if row.path not in listed]
                    listed |= {row.path for row in new}
                    rows.extend(new)
    return rows


def _variant_rows(variants: list[type[BaseModel]], tag: str, prefix: str, shared: dict[str, str]) -> list[KeyRow]:
    """The tag, then the keys of each variant of a tagged union; keys every variant has are listed once, others
    say which variant takes them."""
    values = [typing.get_args(v.model_fields[tag].annotation)[0] for v in variants]
    meanings = "; ".join(f"`{value}`: {_first_paragraph(v.__doc__)}" for value, v in zip(values, variants))
    rows = [KeyRow(f"{prefix}{tag}", "one of " + ", ".join(f"`{value}`" for value in values), "required", meanings)]
    common = set.intersection(*({row.path for row in key_rows(v, prefix, shared)} for v in variants))
    seen = {f"{prefix}{tag}"}
    for value, variant in zip(values, variants):
        for row in key_rows(variant, prefix, shared):
            if row.path not in seen:
                seen.add(row.path)
                note = "" if row.path in common else f"with `{tag}: {value}`"
                rows.append(dataclasses.replace(row, description="; ".join(filter(None, [note, row.description]))))
    return rows


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def key_table(rows: list[KeyRow]) -> str:
    """A markdown table of keys."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{r.path}` | {_escape(r.type)} | {_escape(r.default)} | {_escape(r.description)} |" for r in rows]
    return "\n".join(lines)


def variants_table(union: Any) -> str:
    """A markdown table of a tagged union's variants (such as the distributions): tag value, keys, docstring."""
    variants = [_unwrap(a)[0] for a in typing.get_args(_unwrap(union)[0])]
    tag = _discriminator(variants)
    lines = [f"| `{tag}` | keys | meaning |", "|---|---|---|"]
    for variant in variants:
        value = typing.get_args(variant.model_fields[tag].annotation)[0]
        keys = ", ".join(f"`{n}`: {type_text(_annotation(f))}" for n, f in variant.model_fields.items() if n != tag)
        lines.append(f"| `{value}` | {_escape(keys)} | {_escape(_first_paragraph(variant.__doc__))} |")
    return "\n".join(lines)


def format_page(title: str, intro: str, model: type[BaseModel], shared: dict[str, str] | None = None) -> str:
    """A file format's page: its title, an introduction, the model's docstring and every key."""
    return "\n\n".join([
        f"# {title}", inspect.cleandoc(intro), _first_paragraph(model.__doc__),
        key_table(key_rows(model, shared=shared)),
    ]) + "\n"


def scenario_page() -> str:
    from scenarios.distributions import Distribution
    from scenarios.model import Scenario

    shared = {"dist": "a [distribution](#distributions)"}
    return format_page("Scenario format", """
        A scenario is a YAML file, validated strictly: unknown keys, wrong types and out-of-range values are errors,
        each reported with its key path (exit code 2). The shipped examples in `scenarios/library/` are the best
        templates (`salesops scenarios` lists them). `<name>` stands for a name you choose (a segment, a territory,
        a role…) and `[]` for an item of a list. Per-segment maps (`{smb: 0.3, enterprise: 0.4}`) take a `default`
        key for the segments they do not name. Besides the keys below, a top-level `calibration: path/to/calibration.json`
        (relative to the scenario file) fills whatever the scenario does not give itself from a calibration file.

        *Generated from the pydantic models in `scenarios/model.py`.*
        """, Scenario, shared) + "\n## Distributions\n\n" + (
        "Durations, handling times and deal sizes are written as one of these, e.g. `{dist: gamma, shape: 2, scale: 3}`.\n\n"
        + variants_table(Distribution) + "\n"
    )


def mapping_page() -> str:
    from calibration.mapping import Mapping

    return format_page("Mapping format", """
        A mapping (YAML, validated strictly) says how a CRM export's columns and labels become the canonical fields
        that `salesops calibrate` reads. The shipped mappings are in `calibration/mappings/`, each commented with its
        data set's quirks; see [Calibrate from your CRM](../guides/calibrate-your-crm.md).

        *Generated from the pydantic models in `calibration/mapping.py`.*
        """, Mapping)


def catalogue_page() -> str:
    from optimizers.automation_catalogue import Catalogue

    return format_page("Automation catalogue format", """
        A catalogue (YAML, validated strictly) lists the automation tools `salesops optimize automation` may choose
        from: what each does (an `effect`, one of the scenario's lever kinds without start, costs and adoption), what
        it costs, when it may start and which items it needs or excludes. The shipped `example` catalogue is
        `optimizers/catalogues/example.yaml`.

        *Generated from the pydantic models in `optimizers/automation_catalogue.py`.*
        """, Catalogue)


def sweep_page() -> str:
    from experiments.sweep_spec import SweepSpec

    return format_page("Sweep format", """
        A sweep file (YAML, validated strictly) names a base scenario, factors over `--set` key paths, replications
        and a seed; `salesops sweep` runs every cell. The shipped sweeps are in `experiments/sweeps/`; see
        [Sweeps](../guides/sweeps.md).

        *Generated from the pydantic models in `experiments/sweep_spec.py`.*
        """, SweepSpec)


# ----- the command line, from the typer app -----


def commands(group: Any, prefix: str = "salesops") -> list[tuple[str, Any]]:
    """Every runnable command under a click group (typer's, or click's), as (full name, command), in the help's
    order; a group is whatever has sub-commands."""
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.extend(commands(command, f"{prefix} {name}"))
        else:
            found.append((f"{prefix} {name}", command))
    return found


def _command_section(name: str, command: Any) -> str:
    context = command.context_class(command, info_name=name)
    usage = " ".join([name, *command.collect_usage_pieces(context)])
    lines = [f"## `{name}`", "", inspect.cleandoc(command.help or ""), "", f"```\n{usage}\n```", ""]
    records = [(param, param.get_help_record(context)) for param in command.params]
    records = [(param, record) for param, record in records if record]
    if records:
        lines += ["| argument or option | meaning |", "|---|---|"]
        lines += [f"| `{_escape(record[0])}` | {_escape(record[1])} |" for _, record in records]
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    from experiments.cli import app

    root = typer.main.get_command(app)
    intro = inspect.cleandoc("""
        Every command of `salesops`, with its arguments and options, as `salesops COMMAND --help` prints them.
        Input that cannot be used is refused before anything runs, one line per problem naming the file, row, column
        or key, with exit code 2.

        *Generated from the typer app in `experiments/cli.py`.*
        """)
    listing = "\n".join(f"- [`{name}`](#{_anchor(name)}): {_first_paragraph(command.help)}" for name, command in commands(root))
    sections = "\n".join(_command_section(name, command) for name, command in commands(root))
    return f"# Command line\n\n{intro}\n\n{listing}\n\n{sections}"


def _anchor(heading: str) -> str:
    """The anchor MkDocs gives a heading such as ``salesops optimize headcount``."""
    return heading.lower().replace(" ", "-")


# ----- the results of a simulation, from the engine's column tables -----


def _column_table(columns: dict[str, str]) -> str:
    lines = ["| column | meaning |", "|---|---|"]
    return "\n".join(lines + [f"| `{name}` | {_escape(meaning)} |" for name, meaning in columns.items()])


def outputs_page() -> str:
    from engine import LEAD_LOG_COLUMNS, MONTHLY_COLUMNS, SUMMARY_KPIS, LeadState

    kpis = ", ".join(f"`{kpi}`" for kpi in SUMMARY_KPIS)
    states = ", ".join(f"`{state.name.lower()}`" for state in LeadState)
    return inspect.cleandoc(f"""
        # Simulation outputs

        `salesops simulate SCENARIO --out DIR` writes these files into `DIR`; in Python, `engine.simulate` returns
        the same tables as a `Results` (`monthly`, `summary`, `bands`, `states`, `lead_log`).

        *Generated from the column tables in `engine/results.py`.*

        ## `monthly.csv`

        One row per replication and month; `<role>` stands for each role of the scenario.

        {{monthly}}

        ## `summary.json`

        Per KPI over the whole horizon ({kpis}): the mean, P10, P50 and P90 across replications, with the
        scenario's name, the seed and the number of replications.

        ## `bands.csv`

        Per month, the mean, P10, P50 and P90 across replications of every monthly column (`bookings_p10`,
        `bookings_p50`…): what fan charts are drawn from.

        ## `states.csv`

        Per replication, how many leads ended in each state: {states}. Every lead ends in exactly one.

        ## `replications.csv`

        One row per replication with the horizon KPIs ({kpis}): what `salesops compare` pairs.

        ## `scenario.yaml`

        The fully resolved scenario, overrides applied, runnable as it is.

        ## `leads.csv`

        With `--lead-log`: one row per lead and replication.

        {{leads}}
        """).format(monthly=_column_table(MONTHLY_COLUMNS), leads=_column_table(LEAD_LOG_COLUMNS)) + "\n"


#: Generated page path (under docs/) → the function that writes it.
PAGES = {
    "reference/cli.md": cli_page,
    "reference/scenario-format.md": scenario_page,
    "reference/outputs.md": outputs_page,
    "reference/mapping-format.md": mapping_page,
    "reference/catalogue-format.md": catalogue_page,
    "reference/sweep-format.md": sweep_page,
}
