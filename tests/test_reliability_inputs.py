"""Hostile inputs, generated: scenario documents, ``--set`` values, CRM exports and territory files.

Every generated case must end cleanly (``tests/reliability.py``): a complete, consistent result, or one
``error:`` line per problem; never a traceback, a hang, a silently lost row or a formula cell written for people.
The hand-written cases below are the issue's reproductions, one per class.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import event, given, note
from hypothesis import strategies as st

from experiments.output import check_complete
from scenarios import ScenarioError, load_scenario, read_scenario_data
from scenarios.loading import MAX_YAML_DEPTH
from tests.reliability import FUZZ_SETTINGS, assert_clean_ending, csv_text, formula_cells, invoke, strict_json

#: Runs are kept small: at most this many leads per replication (the guard under test refuses more).
FUZZ_MAX_LEADS = "20000"
BASELINE = read_scenario_data("baseline")[1]


def key_paths(value: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a YAML value, leaves and branches."""
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += key_paths(item, (*prefix, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += key_paths(item, (*prefix, str(index)))
    return paths


PATHS = key_paths(BASELINE)
FORMULAS = ("=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "=HYPERLINK(\"http://x\")", "\t=1")
numbers = st.one_of(
    st.integers(-5, 60),
    st.floats(-1e3, 1e3),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 5e-324, 2**31, 10**12, 2**70, -(2**63), 10**400]),
)
texts = st.one_of(st.text(max_size=20), st.sampled_from(FORMULAS), st.sampled_from(["2027-02-30", "2027-13-01", "~", "null", "'"]))
scalars = st.one_of(numbers, texts, st.booleans(), st.none())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=3)), max_leaves=8)


def set_path(data: dict, path: tuple[str, ...], value: object) -> None:
    node = data
    for key in path[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


#: Hostile YAML that no safe_dump of a value writes: aliases, nesting, repeated keys, impossible dates, tags.
RAW_YAML = st.sampled_from([
    "description: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: [*f, *f, *f, *f, *f, *f, *f, *f]\n",
    "seed: 1\nseed: 2\n",
    "start: 2027-02-30\n",
    "horizon_months: " + "[" * 50_000 + "]" * 50_000 + "\n",
    "description: !!python/object/apply:os.system ['true']\n",
    "seed: " + "9" * 6000 + "\n",
    "description: !!binary 'not base64!'\n",
    "<<: {seed: 1}\n",
    "description: [unclosed\n",
])


@st.composite
def scenario_documents(draw: st.DrawFn) -> str:
    """The baseline with a few keys replaced by hostile values, dumped as YAML, sometimes with hostile YAML added."""
    data = yaml.safe_load(yaml.safe_dump(BASELINE))
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)):
        try:
            set_path(data, path, draw(values))
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # an earlier change removed the path
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    if draw(st.booleans()):
        text += draw(RAW_YAML)
    return text


@FUZZ_SETTINGS
@given(document=scenario_documents())
def test_generated_scenario_documents_end_cleanly(document):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.yaml"
        path.write_text(document, encoding="utf-8")
        out = Path(folder) / "out"
        result = invoke("simulate", path, "-n", "2", "--lead-log", "--max-leads", FUZZ_MAX_LEADS, "--out", out)
        note(result.output[-400:])
        outcome = assert_clean_ending(result, out)
        event(f"exit {result.exit_code}")
        if outcome == "ok":
            assert_no_lead_lost(out)


def assert_no_lead_lost(out: Path) -> None:
    """Every lead of every replication, and every item carried in from before the start, ends in exactly one state
    (no silent loss): the states count the lead log's rows, and the new ones are the leads counted."""
    states = pd.read_csv(out / "states.csv").set_index("replication")
    totals = pd.read_csv(out / "replications.csv").set_index("replication")
    log = pd.read_csv(out / "leads.csv", usecols=["replication", "origin"])
    rows = log.groupby("replication").size().reindex(states.index, fill_value=0)
    new = log[log["origin"].eq("new")].groupby("replication").size().reindex(states.index, fill_value=0)
    assert (states.sum(axis=1) == rows).all() and (new == totals["leads"]).all()


@FUZZ_SETTINGS
@given(path=st.sampled_from(PATHS), value=st.one_of(values.map(lambda v: yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()), st.text(max_size=30), RAW_YAML))
def test_generated_set_values_end_cleanly(path, value):
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out"
        result = invoke("simulate", "baseline", "-n", "1", "--lead-log", "--set", "horizon_months=2", "--set", f"{'.'.join(path)}={value}",
                        "--max-leads", FUZZ_MAX_LEADS, "--out", out)
        note(result.output[-400:])
        outcome = assert_clean_ending(result, out)
        event(f"exit {result.exit_code}")
        if outcome == "ok":
            assert_no_lead_lost(out)


# ----- CRM exports -----

EXPORT_COLUMNS = ["lead_id", "created_at", "segment", "territory", "source", "sdr", "first_response_at", "mql_at", "sql_at",
                  "opportunity_at", "closed_at", "status", "stage", "amount"]
dates = st.one_of(st.datetimes(min_value=pd.Timestamp("2026-01-01").to_pydatetime(), max_value=pd.Timestamp("2027-12-31").to_pydatetime())
                  .map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")), st.sampled_from(["", "2027-02-30 00:00:00", "yesterday", "=NOW()"]))
cells = {
    "lead_id": st.text(min_size=1, max_size=8).filter(lambda s: s.strip()),
    "segment": st.sampled_from(["smb", "mid_market", "enterprise", "", "=cmd", "+1", "-1", "@x"]),
    "territory": st.sampled_from(["north", "south", "east", "west", "", "=A1"]),
    "source": st.sampled_from(["inbound_smb", "inbound_mid_market", "", "@SUM(1)"]),
    "sdr": st.sampled_from(["rep-001", "rep-002", "", "-rep"]),
    "status": st.sampled_from(["Won", "Lost", "Open", "Disqualified", "", "=WON"]),
    "stage": st.sampled_from(["lead", "mql", "sql", "won", "", "+stage"]),
    "amount": st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.sampled_from(["", "inf", "-inf", "nan", "1e999", "=1+1", "12,5", "-3"])),
}


@st.composite
def exports(draw: st.DrawFn) -> tuple[str, int]:
    """A CRM export in the ``generated`` layout with hostile cells, short and long rows; its data-row count."""
    rows = []
    for _ in range(draw(st.integers(1, 25))):
        row = [draw(cells[c]) if c in cells else draw(dates) for c in EXPORT_COLUMNS]
        shape = draw(st.sampled_from(["full", "full", "full", "short", "long"]))
        rows.append(row[: len(row) - 2] if shape == "short" else row + ["extra"] if shape == "long" else row)
    header = list(EXPORT_COLUMNS)
    if draw(st.integers(0, 9)) == 0:
        header[3] = "segment"  # a repeated column
    return csv_text([header, *rows]), len(rows)


@FUZZ_SETTINGS
@given(export=exports())
def test_generated_crm_exports_end_cleanly_and_account_for_every_row(export):
    text, rows = export
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        path.write_text(text, encoding="utf-8")
        out = Path(folder) / "out"
        result = invoke("calibrate", path, "--mapping", "generated", "--out", out)
        note(result.output[-400:])
        outcome = assert_clean_ending(result, out, people_csv=("quarantine.csv",))
        event(f"exit {result.exit_code}")
        if (out / "audit.json").exists() and (out / "complete.json").exists():
            audit = strict_json(out / "audit.json")
            assert audit["rows_in"] == rows, "a row lost silently"
            assert audit["used"] + audit["quarantined"] == rows
            assert not formula_cells(out / "quarantine.csv")
        assert outcome in ("ok", "error")


# ----- territory files -----

territory_cells = st.one_of(st.integers(-3, 50).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                            st.sampled_from(["", "x", "=1+1", "+A1", "-2", "@id", "1e999", "yes"]))


@st.composite
def territory_files(draw: st.DrawFn) -> tuple[str, str]:
    """Units and reps CSVs: usual columns, sometimes missing, repeated or ;-separated, with hostile cells."""
    n = draw(st.integers(1, 8))
    columns = draw(st.sampled_from([["id", "workload", "lat", "lon"], ["id", "workload"], ["workload", "lat"], ["id", "workload", "workload"],
                                    ["id", "workload", "lat", "lon", "owner", "locked"]]))
    ids = [draw(st.sampled_from([f"u{i}", f"u{i}", "", "=u", "u0"])) for i in range(n)]
    rows = []
    for i in range(n):
        row = []
        for column in columns:
            if column == "id":
                row.append(ids[i])
            elif column == "lat":
                row.append(draw(st.one_of(st.floats(-95, 95).map(str), territory_cells)))
            elif column == "lon":
                row.append(draw(st.one_of(st.floats(-185, 185).map(str), territory_cells)))
            elif column == "owner":
                row.append(draw(st.sampled_from(["r1", "r2", "", "=r"])))
            else:
                row.append(draw(territory_cells))
        rows.append(row)
    units = csv_text([columns, *rows])
    if draw(st.integers(0, 9)) == 0:
        units = units.replace(",", ";")
    reps = csv_text([["id", "lat", "lon"], ["r1", "40", "-75"], ["r2", draw(st.sampled_from(["41", "", "x", "inf"])), "-75"]])
    return units, reps


@FUZZ_SETTINGS
@given(files=territory_files())
def test_generated_territory_files_end_cleanly(files):
    units_text, reps_text = files
    with tempfile.TemporaryDirectory() as folder:
        units, reps, out = Path(folder) / "units.csv", Path(folder) / "reps.csv", Path(folder) / "out"
        units.write_text(units_text, encoding="utf-8")
        reps.write_text(reps_text, encoding="utf-8")
        result = invoke("optimize", "territories", "--units", units, "--reps", reps, "--out", out, "--balance", "workload:0.5",
                        "--no-price-of-balance", "--time-limit", "10")
        note(result.output[-400:])
        assert_clean_ending(result, out, people_csv=("assignment.csv",))
        event(f"exit {result.exit_code}")


# ----- the reproductions, one per class -----

LAUGHS = "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
                 for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh")) + "description: [" + ", ".join(["*h"] * 9) + "]\n"


@pytest.mark.parametrize(("document", "expected"), [
    (LAUGHS, "aliases expand the document beyond"),
    ("name: x\nname: y\n", "duplicate key 'name' (first on line 1)"),
    ("name: x\nstart: 2027-02-30\n", "day is out of range for month"),
    ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", f"nested more than {MAX_YAML_DEPTH} levels deep"),
])
def test_hostile_yaml_is_one_line_quickly(tmp_path, document, expected):
    path = tmp_path / "s.yaml"
    path.write_text(document)
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert time.perf_counter() - started < 5
    assert expected in raised.value.problems[0] and len(raised.value.problems) == 1


def test_a_value_echoed_in_a_message_is_bounded():
    with pytest.raises(ScenarioError) as raised:
        load_scenario("baseline", ["name=" + "[" + ", ".join(["'" + "x" * 1000 + "'"] * 1000) + "]"])
    assert all(len(problem) < 300 for problem in raised.value.problems)


@pytest.mark.parametrize("override", [
    "lead_sources.inbound_smb.monthly_volume=.inf", "roles.ae.salary_monthly=.inf", "funnel.mql_rate.smb=.nan",
    "lead_sources.inbound_smb.monthly_volume=1e12", "lead_sources.inbound_smb.monthly_volume=10000000",
])
def test_infinite_and_oversized_numbers_are_refused_before_the_work(tmp_path, override):
    result = invoke("simulate", "baseline", "--set", override, "--set", "horizon_months=120", "--out", tmp_path / "out")
    assert assert_clean_ending(result) == "error" and result.exit_code == 2
    assert not (tmp_path / "out").exists(), "nothing is written for a refused run"


def test_an_infinite_option_is_one_line(tmp_path):
    result = invoke("optimize", "headcount", "baseline", "--target-bookings", "inf", "--out", tmp_path / "plan")
    assert assert_clean_ending(result) == "error" and "--target-bookings: expected a finite number" in result.stderr


def test_a_sweep_factor_of_infinity_is_named(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s\nscenario: baseline\nfactors:\n  roles.ae.salary_monthly: [9000, .inf]\nreplications: 1\n")
    result = invoke("sweep", sweep, "--out", tmp_path / "out")
    assert assert_clean_ending(result) == "error" and "finite number" in result.stderr


def test_an_infinite_amount_quarantines_its_row_and_json_stays_strict(tmp_path):
    rows = [EXPORT_COLUMNS]
    for i in range(40):
        won = i % 3 == 0
        rows.append([f"L{i}", f"2027-01-{1 + i % 28:02d} 10:00:00", "smb", "north", "inbound_smb", "rep-001", "", "", "", "",
                     f"2027-02-{1 + i % 28:02d} 10:00:00", "Won" if won else "Lost", "won" if won else "lead",
                     "inf" if i == 0 else "=1+1" if i == 3 else "5000" if won else ""])
    export = tmp_path / "export.csv"
    export.write_text(csv_text(rows))
    result = invoke("calibrate", export, "--mapping", "generated", "--out", tmp_path / "cal")
    assert_clean_ending(result, tmp_path / "cal", people_csv=("quarantine.csv",))
    quarantine = pd.read_csv(tmp_path / "cal" / "quarantine.csv", dtype=str, keep_default_na=False)
    assert set(quarantine["lead_id"]) >= {"L0", "L3"}
    assert "'=1+1" in quarantine["amount"].tolist(), "a formula cell is kept, neutralised, recoverable"


def test_territory_file_mistakes_are_one_line(tmp_path):
    (tmp_path / "reps.csv").write_text("id,lat,lon\nr1,40,-75\n")
    (tmp_path / "semicolons.csv").write_text("id;workload\nu1;3\n")
    (tmp_path / "long.csv").write_text("id,workload\nu1," + "9" * 200_000 + "\n")
    (tmp_path / "repeated.csv").write_text("id,workload,workload\nu1,1,2\n")
    for units, expected in (("semicolons.csv", "separated by semicolons"), (".", "is a folder"), ("long.csv", "at most 131,072 characters"),
                            ("repeated.csv", "appear more than once")):
        result = invoke("optimize", "territories", "--units", tmp_path / units, "--reps", tmp_path / "reps.csv", "--out", tmp_path / "out",
                        "--balance", "workload:0.5")
        assert assert_clean_ending(result) == "error" and expected in result.stderr, result.stderr


def test_report_and_compare_refuse_a_truncated_or_foreign_run(tmp_path):
    out = tmp_path / "run"
    assert invoke("simulate", "baseline", "-n", "2", "--set", "horizon_months=2", "--out", out).exit_code == 0
    reference = tmp_path / "ref"
    assert invoke("simulate", "baseline", "-n", "2", "--set", "horizon_months=2", "--out", reference).exit_code == 0
    check_complete(out)
    (out / "summary.json").write_text((out / "summary.json").read_text()[:40])
    (reference / "replications.csv").write_text("replication,leads\n0,abc\n")
    for result in (invoke("report", out), invoke("compare", reference, out), invoke("compare", out, reference)):
        assert assert_clean_ending(result) == "error" and "run it again" in result.stderr


def test_control_characters_in_a_value_or_a_file_name_stay_on_one_line(tmp_path):
    result = invoke("simulate", "baseline", "--set", "funnel.stages.2.duration_days.mid_market.dist=\x1f\x0c", "--out", tmp_path / "out")
    assert assert_clean_ending(result) == "error" and len(result.stderr.splitlines()) == 1
    result = invoke("simulate", tmp_path / "a\nb.yaml", "--out", tmp_path / "out")
    assert assert_clean_ending(result) == "error" and "a\\nb.yaml: no such file" in result.stderr
