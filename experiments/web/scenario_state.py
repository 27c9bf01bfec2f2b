"""A browser tab's scenario: where it came from, and the edits made to it as ``--set`` overrides.

The state lives in the tab (a ``dcc.Store``), never on the server, so two people editing at once never see each
other's edits. Edits are kept as the overrides the command line takes (``roles.ae.hiring_plan.2027-03={north: 2}``),
applied and validated by the scenario layer, so the page shows the same messages as ``salesops simulate --set``
and can show the command that would run the same scenario.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from scenarios import Scenario, ScenarioError, apply_overrides, read_scenario_data, validate_scenario
from scenarios.model import ALL_TERRITORIES

#: The funnel's per-segment rates the Scenario page edits as a table.
RATES = ("mql_rate", "sql_rate", "opportunity_rate")
#: Upload limit: scenario and calibration files are small; anything bigger is a mistake.
MAX_UPLOAD_BYTES = 5_000_000

State = dict[str, Any]


def shipped_state(name: str) -> State:
    """The state of a shipped scenario, unedited."""
    source, data = read_scenario_data(name)
    return {"source": source, "base": data, "set": {}}


def uploaded_state(filename: str, contents: str, current: State) -> State:
    """The state after an upload: a scenario YAML replaces the scenario, a ``calibration.json`` is applied to the
    current one (its fitted segments, lead sources and funnel). Bad files raise ScenarioError naming the file."""
    raw = decode_upload(filename, contents, ScenarioError)
    if filename.lower().endswith(".json"):
        from calibration.calibrate import apply_calibration

        try:
            calibration = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ScenarioError(filename, [f"not a calibration file: {error}"]) from None
        if not isinstance(calibration, dict) or not isinstance(calibration.get("scenario"), dict):
            raise ScenarioError(filename, ["not a calibration file: no 'scenario' mapping (written by salesops calibrate)"])
        state = {"source": f"{current['source']} + {filename}", "base": apply_calibration(effective_data(current), calibration), "set": {}}
    elif filename.lower().endswith((".yaml", ".yml")):
        with tempfile.TemporaryDirectory(prefix="salesops-upload-") as folder:
            path = Path(folder) / "scenario.yaml"
            path.write_bytes(raw)
            try:
                _, data = read_scenario_data(path)
            except ScenarioError as error:
                raise ScenarioError(filename, error.problems) from None
        state = {"source": filename, "base": data, "set": {}}
    else:
        raise ScenarioError(filename, ["expected a scenario (.yaml, .yml) or a calibration (.json)"])
    resolve(state)  # refuse a file that does not validate: the tab keeps the scenario it had
    return state


def decode_upload(filename: str, contents: str, error: type[Exception]) -> bytes:
    """The bytes of a ``dcc.Upload`` data URL; ``error(filename, problems)`` when empty, too big or not one."""
    try:
        raw = base64.b64decode(contents.partition(",")[2], validate=True)
    except (binascii.Error, ValueError):
        raise error(filename, ["could not read the upload"]) from None
    if not raw.strip():
        raise error(filename, ["the file is empty"])
    if len(raw) > MAX_UPLOAD_BYTES:
        raise error(filename, [f"{len(raw):,} bytes: larger than the {MAX_UPLOAD_BYTES:,} accepted"])
    return raw


def overrides(state: State) -> list[str]:
    """The edits as ``KEY.PATH=VALUE`` lines, in the order made."""
    return [f"{key}={value}" for key, value in state["set"].items()]


def effective_data(state: State) -> dict[str, Any]:
    """The raw scenario with the edits applied (not validated)."""
    return apply_overrides(state["base"], overrides(state), state["source"])


def resolve(state: State) -> Scenario:
    """The validated scenario, or ScenarioError with one line per problem, as the command line says them."""
    return validate_scenario(effective_data(state), state["source"])


def with_edit(state: State, key: str, value: str) -> State:
    """A new state with ``key`` set to ``value`` (YAML text); the latest edit of a key replaces earlier ones."""
    edits = {k: v for k, v in state["set"].items() if k != key}
    edits[key] = value
    return {**state, "set": edits}


def scenario_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario, runnable by ``salesops simulate`` as it is."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


# ----- the tables the Scenario page edits -----


def months(data: dict[str, Any]) -> list[str]:
    """The horizon's months (YYYY-MM) from a raw scenario; empty when start or horizon cannot be read."""
    try:
        start, count = str(data["start"]), int(data.get("horizon_months", 18))
        year, month = int(start[:4]), int(start[5:7])
    except (KeyError, TypeError, ValueError):
        return []
    return [f"{(year * 12 + month - 1 + k) // 12:04d}-{(year * 12 + month - 1 + k) % 12 + 1:02d}" for k in range(max(count, 0))]


def _planned_roles(data: dict[str, Any]) -> list[str]:
    """Roles whose headcount is planned (not derived from a span of control)."""
    return [name for name, role in (data.get("roles") or {}).items() if isinstance(role, dict) and not role.get("manages")]


def hiring_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per planned role and territory (and ``all``: spread by lead share), one column per month."""
    territories = [*(data.get("territories") or {}), ALL_TERRITORIES]
    rows = []
    for role in _planned_roles(data):
        plan = data["roles"][role].get("hiring_plan") or {}
        for territory in territories:
            row: dict[str, Any] = {"role": role, "territory": territory}
            for month in months(data):
                entry = plan.get(month)
                if isinstance(entry, dict):
                    row[month] = entry.get(territory, 0)
                else:
                    row[month] = entry if territory == ALL_TERRITORIES and entry is not None else 0
            rows.append(row)
    return rows


def hiring_edit(data: dict[str, Any], role: str, territory: str, month: str, value: Any) -> tuple[str, str]:
    """The override for one changed cell: the month's whole entry as a mapping, so a shorthand count
    (``2027-03: 4``, spread by lead share) is kept as ``all`` beside the territory just set."""
    entry = (data["roles"][role].get("hiring_plan") or {}).get(month)
    mapping = dict(entry) if isinstance(entry, dict) else ({ALL_TERRITORIES: entry} if entry is not None else {})
    mapping[territory] = number_text(value)
    text = ", ".join(f"{name}: {count}" for name, count in mapping.items() if str(count).strip() not in ("0", ""))
    return f"roles.{role}.hiring_plan.{month}", "{" + text + "}"


def headcount_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per planned role, one column per territory: reps at the start."""
    territories = list(data.get("territories") or {})
    return [
        {"role": role, **{t: (data["roles"][role].get("headcount") or {}).get(t, 0) for t in territories}}
        for role in _planned_roles(data)
    ]


def rate_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per funnel rate, one column per segment (and ``default``)."""
    funnel = data.get("funnel") or {}
    columns = [*(data.get("segments") or {}), "default"]
    rows = []
    for rate in RATES:
        values = funnel.get(rate) or {}
        rows.append({"rate": rate, **{c: values.get(c, "") if isinstance(values, dict) else "" for c in columns}})
    return rows


def tool_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The automation tools: name, kind, start month and costs."""
    tools = data.get("automation") or {}
    keys = ("start_month", "one_time_cost", "monthly_cost", "monthly_cost_per_rep")
    return [{"tool": name, "kind": spec.get("kind", ""), **{k: spec.get(k, "") for k in keys}} for name, spec in tools.items() if isinstance(spec, dict)]


def number_text(value: Any) -> str:
    """A cell's value as override text: numbers as they are, anything else as typed (the scenario layer judges)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip() if value is not None else "0"
    return json.dumps(text) if any(c in text for c in ",{}:[]#") else (text or "0")
