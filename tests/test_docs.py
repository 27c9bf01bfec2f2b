"""The generated reference against the code it documents: every command and option of the typer app, and every key
of the file formats (read from the pydantic models' JSON schemas, a walk independent of the generator's), appear in
the pages. The generator's functions are called directly: no site is built."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from calibration.mapping import Mapping
from experiments.cli import app
from experiments.sweep_spec import SweepSpec
from optimizers.automation_catalogue import Catalogue
from scenarios.model import Scenario

TOOLS = Path(__file__).resolve().parents[1] / "docs" / "_tools"


def _tool(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"docs_tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


reference = _tool("reference")


def schema_paths(schema: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Every key path of a JSON schema (``<name>`` for a map's keys, ``[]`` for a list's items), and the paths of
    distributions (unions tagged by ``dist``), which the page lists once in their own table."""
    definitions = schema.get("$defs", {})
    paths: set[str] = set()
    distributions: set[str] = set()

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        return definitions[node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node

    def walk(node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        variants = [resolve(v) for v in node.get("oneOf", node.get("anyOf", [])) if resolve(v).get("type") != "null"]
        if variants:
            if node.get("discriminator", {}).get("propertyName") == "dist" or any("dist" in v.get("properties", {}) for v in variants):
                distributions.add(path)
                return
            for variant in variants:
                walk(variant, path)
            return
        for key, child in node.get("properties", {}).items():
            paths.add(f"{path}{key}")
            walk(child, f"{path}{key}.")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}<name>.")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path.rstrip('.')}[].")

    walk(schema, "")
    return paths, distributions


@pytest.mark.parametrize("model, page", [
    (Scenario, reference.scenario_page),
    (Mapping, reference.mapping_page),
    (Catalogue, reference.catalogue_page),
    (SweepSpec, reference.sweep_page),
])
def test_every_key_of_a_format_is_in_its_reference_page(model, page):
    text = page()
    paths, distributions = schema_paths(model.model_json_schema())
    assert len(paths) > 10
    missing = sorted(path for path in paths if f"| `{path}` |" not in text)
    assert not missing, f"keys missing from the {model.__name__} reference: {missing}"
    for path in distributions:  # the key holding the distribution (or a map or list of them) links to their table
        key = re.sub(r"(\.<name>|\[\])*\.?$", "", path)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert "[distribution](#distributions)" in row, row


def test_the_scenario_page_lists_every_distribution_and_its_keys():
    text = reference.scenario_page().split("## Distributions")[1]
    _, distributions = schema_paths(Scenario.model_json_schema())
    assert {"roles.<name>.handling_hours.", "funnel.stages[].duration_days.<name>."} <= distributions
    definitions = Scenario.model_json_schema()["$defs"]
    for definition in definitions.values():
        properties = definition.get("properties", {})
        if "dist" in properties:
            row = next(line for line in text.splitlines() if line.startswith(f"| `{properties['dist']['const']}` |"))
            assert all(f"`{key}`" in row for key in properties if key != "dist"), row


def _walk_commands(command: Any, prefix: str) -> dict[str, Any]:
    sub = getattr(command, "commands", None)
    if sub is None:
        return {prefix: command}
    found = {}
    for name, child in sub.items():
        found |= _walk_commands(child, f"{prefix} {name}")
    return found


def test_every_command_and_option_is_in_the_cli_reference():
    text = reference.cli_page()
    commands = _walk_commands(typer.main.get_command(app), "salesops")
    assert {"salesops simulate", "salesops sweep", "salesops optimize headcount"} <= set(commands)
    sections = dict(re.findall(r"^## `([^`]+)`\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M))
    assert set(sections) == set(commands)
    for name, command in commands.items():
        assert (command.help or "").split("\n")[0].strip() in sections[name]
        for param in command.params:
            for option in [*param.opts, *param.secondary_opts]:
                assert re.search(rf"`[^`]*(?<![\w-]){re.escape(option)}(?![\w-])", sections[name]), (name, option)


def test_a_new_guide_joins_the_guides_section_without_a_nav_edit(tmp_path):
    hooks = _tool("hooks")
    (tmp_path / "guides").mkdir()
    for name in ("listed.md", "forecasting.md", "web-app.md"):
        (tmp_path / "guides" / name).write_text("# A guide\n")
    config = {"docs_dir": str(tmp_path), "nav": [{"Home": "index.md"}, {"Guides": ["guides/listed.md"]}]}
    hooks.on_config(config)
    assert config["nav"][1]["Guides"] == ["guides/listed.md", "guides/forecasting.md", "guides/web-app.md"]


def test_the_tutorial_notebook_runs(tmp_path):
    """docs/tutorial.ipynb executes top to bottom through the Python API (a few replications: seconds)."""
    nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    pytest.importorskip("ipykernel", reason="the test extra installs ipykernel")
    root = Path(__file__).resolve().parents[1]
    notebook = nbformat.read(root / "docs" / "tutorial.ipynb", as_version=4)
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=environment)
    errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    assert any("plan reaches the target" in output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
