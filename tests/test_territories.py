"""Territory design against truths nobody here wrote: OR-Library optima, real county populations, recomputed loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli import app
from optimizers.solve import SolveOptions
from optimizers.territories import Balance, Cap, DesignInfeasible, DesignSpec, design_territories, price_of_balance
from optimizers.territory_inputs import InputError, Table, TerritoryInputs, read_inputs, read_orlib_pmed
from optimizers.territory_scoring import design_scenario, simulated_totals

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PMED = DATA / "orlib-pmed"
COUNTIES = DATA / "us-county-centers-of-population-2020" / "CenPop2020_Mean_CO.txt"
runner = CliRunner()
EXACT = SolveOptions(rel_gap=0.0)


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the shared data folder sits beside the checkout)")
    return path


@pytest.mark.parametrize(("instance", "optimum"), [("pmed1", 5819), ("pmed5", 1355), ("pmed10", 1255)])
def test_orlib_p_median_reaches_the_published_optimum(instance, optimum):
    path = need(PMED / f"{instance}.txt")
    inputs = read_orlib_pmed(path.read_text(), path.name)
    distance, p = inputs.distance, len(inputs.reps)
    design = design_territories(inputs, DesignSpec(), EXACT)
    assert design.result.status == "optimal"
    assert design.compactness == pytest.approx(optimum)
    assert design.result.objective == pytest.approx(optimum)
    # every unit goes to the nearest open centre: recomputed from the centres alone
    centres = [int(c) - 1 for c in design.centres]
    assert len(set(centres)) == p
    assert distance[centres].min(axis=0).sum() == pytest.approx(optimum)


# ----- a real geography: Pennsylvania's 67 counties, population as workload -----


def write_state(folder: Path, state: str = "Pennsylvania", reps: int = 6) -> pd.DataFrame:
    """units.csv and reps.csv for one state: reps live in the most populous counties, today each county belongs to
    the nearest rep (very unbalanced), and the most populous county is locked to its owner."""
    counties = pd.read_csv(need(COUNTIES), dtype={"STATEFP": str, "COUNTYFP": str})
    state_rows = counties[counties["STNAME"] == state].copy()
    state_rows["id"] = state_rows["STATEFP"] + state_rows["COUNTYFP"]
    homes = state_rows.nlargest(reps, "POPULATION")
    rep_ids = [f"rep{k + 1}" for k in range(reps)]
    lat, lon = np.radians(state_rows["LATITUDE"].to_numpy()), np.radians(state_rows["LONGITUDE"].to_numpy())
    hlat, hlon = np.radians(homes["LATITUDE"].to_numpy()), np.radians(homes["LONGITUDE"].to_numpy())
    nearest = np.hypot(lat[:, None] - hlat[None], (lon[:, None] - hlon[None]) * np.cos(lat)[:, None]).argmin(axis=1)
    units = pd.DataFrame({
        "id": state_rows["id"], "name": state_rows["COUNAME"], "population": state_rows["POPULATION"],
        "lat": state_rows["LATITUDE"], "lon": state_rows["LONGITUDE"], "owner": np.array(rep_ids)[nearest],
        "locked": np.where(state_rows["id"] == homes["id"].iloc[0], "yes", ""),
    })
    units.to_csv(folder / "units.csv", index=False)
    pd.DataFrame({"id": rep_ids, "home_unit": homes["id"].to_numpy()}).to_csv(folder / "reps.csv", index=False)
    return units


def optimize(folder: Path, *args: str):
    return runner.invoke(app, ["optimize", "territories", "--units", str(folder / "units.csv"), "--reps", str(folder / "reps.csv"), "--out", str(folder / "out"), *args])


def test_county_design_is_balanced_when_recomputed_from_assignment_csv(tmp_path):
    units = write_state(tmp_path)
    result = optimize(tmp_path, "--balance", "population:10%", "--objective", "compactness,disruption", "--scenario", "baseline", "-n", "1")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assignment = pd.read_csv(out / "assignment.csv", dtype=str)
    # independent of the model code: the CSVs alone
    assert sorted(assignment["unit"]) == sorted(units["id"]) and assignment["rep"].notna().all()
    population = units.set_index("id")["population"]
    loads = population.loc[assignment["unit"]].groupby(assignment["rep"].to_numpy()).sum()
    share = population.sum() / 6
    assert len(loads) == 6
    assert ((loads >= 0.9 * share - 1e-6) & (loads <= 1.1 * share + 1e-6)).all(), loads / share
    today = population.groupby(units.set_index("id")["owner"]).sum()
    assert (today / share).max() > 1.5  # the test means something: today is far out of balance
    locked = units.loc[units["locked"] == "yes", ["id", "owner"]].iloc[0]
    assert assignment.set_index("unit").at[locked["id"], "rep"] == locked["owner"]
    moved = assignment[assignment["moved"] == "True"]
    assert len(moved) > 0 and moved["reason"].str.len().gt(0).all()
    assert (moved["rep"] != moved["previous_rep"]).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "optimal"
    assert summary["units_moved"] == len(moved)
    assert {stat["status"] for stat in summary["price_of_balance"]} == {"optimal"}
    assert set(summary["simulation"]["by_design"]) == {"today", "optimized"}
    assert (out / "map.png").stat().st_size > 10_000
    simulated = pd.read_csv(out / "simulation.csv")
    assert set(simulated["territory"]) == set(loads.index)


def county_inputs(folder: Path) -> TerritoryInputs:
    write_state(folder)
    return read_inputs(Table.parse((folder / "units.csv").read_text(), "units.csv"), Table.parse((folder / "reps.csv").read_text(), "reps.csv"), ("population",))


def test_tightening_a_tolerance_never_lowers_the_optimal_objective(tmp_path):
    inputs = county_inputs(tmp_path)
    spec = DesignSpec(balance=(Balance("population", 0.2),))
    rows = price_of_balance(inputs, spec, (None, 1.5, 1.0, 0.5, 0.25), EXACT)
    objectives = [row["objective"] for row in rows]
    assert all(row["status"] == "optimal" for row in rows), rows
    assert all(tighter >= looser - 1e-6 * looser for looser, tighter in zip(objectives, objectives[1:])), objectives
    assert objectives[-1] > objectives[0]  # balance has a price here


def test_locked_units_never_move_even_against_every_objective(tmp_path):
    inputs = county_inputs(tmp_path)
    units = inputs.units.copy()
    # lock the five least populous counties to the rep farthest from them
    far = pd.Series(np.argmax(inputs.distance, axis=0), index=units.index).map(dict(enumerate(inputs.reps.index)))
    chosen = units.nsmallest(5, "population").index
    units.loc[chosen, "owner"] = far[chosen]
    units.loc[chosen, "locked"] = True
    locked_inputs = TerritoryInputs(units, inputs.reps, inputs.attributes, inputs.distance)
    design = design_territories(locked_inputs, DesignSpec(balance=(Balance("population", 0.15),)), EXACT)
    assert (design.assignment[chosen] == far[chosen]).all()
    assert (design.moves.loc[chosen, "reason"] == "locked").all()


def test_a_unit_heavier_than_any_rep_bound_is_named_with_its_attribute(tmp_path):
    pd.DataFrame({"id": ["a", "b", "c", "d"], "workload": [100, 5, 5, 10], "lat": [40, 40.1, 40.2, 40.3], "lon": [-75] * 4}).to_csv(tmp_path / "units.csv", index=False)
    pd.DataFrame({"id": ["r1", "r2"], "lat": [40, 40.3], "lon": [-75, -75]}).to_csv(tmp_path / "reps.csv", index=False)
    result = optimize(tmp_path, "--balance", "workload:0.1")
    assert result.exit_code == 1
    assert "unit 'a'" in result.output and "workload" in result.output and "Traceback" not in result.output
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "infeasible"


def test_a_conflict_only_integrality_creates_is_named_by_rep_and_attribute(tmp_path):
    # three equal units, two reps, ±10%: each rep would need 1.5 units; no single unit is too heavy
    pd.DataFrame({"id": ["a", "b", "c"], "workload": [10, 10, 10], "lat": [40, 40.1, 40.2], "lon": [-75] * 3}).to_csv(tmp_path / "units.csv", index=False)
    pd.DataFrame({"id": ["r1", "r2"], "lat": [40, 40.2], "lon": [-75, -75]}).to_csv(tmp_path / "reps.csv", index=False)
    result = optimize(tmp_path, "--balance", "workload:10%")
    assert result.exit_code == 1, result.output
    # the irreducible conflict: one rep cannot reach 13.5..16.5 with units of 10
    assert "carries workload at most 16.5" in result.output and "carries workload at least 13.5" in result.output
    assert "rep 'r1'" in result.output or "rep 'r2'" in result.output


BAD_INPUTS = {
    "missing id": ("units.csv", "id,workload,lat,lon\nu1,5,40,-75\n,6,40.1,-75\n", "units.csv row 3 column 'id': missing id"),
    "duplicate id": ("units.csv", "id,workload,lat,lon\nu1,5,40,-75\nu1,6,40.1,-75\n", "units.csv row 3 column 'id': duplicate id 'u1'"),
    "non-numeric attribute": ("units.csv", "id,workload,lat,lon\nu1,5,40,-75\nu2,many,40.1,-75\n", "units.csv row 3 column 'workload': 'many' is not a number"),
    "unknown owner": ("units.csv", "id,workload,lat,lon,owner\nu1,5,40,-75,r1\nu2,6,40.1,-75,r9\n", "units.csv row 3 column 'owner': unknown rep 'r9'"),
    "duplicate rep": ("reps.csv", "id,lat,lon\nr1,40,-75\nr1,40.1,-75\n", "reps.csv row 3 column 'id': duplicate id 'r1'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_csv_is_refused_naming_file_row_and_column(tmp_path, case):
    pd.DataFrame({"id": ["u1", "u2"], "workload": [5, 6], "lat": [40, 40.1], "lon": [-75, -75]}).to_csv(tmp_path / "units.csv", index=False)
    pd.DataFrame({"id": ["r1", "r2"], "lat": [40, 40.1], "lon": [-75, -75]}).to_csv(tmp_path / "reps.csv", index=False)
    name, text, expected = BAD_INPUTS[case]
    (tmp_path / name).write_text(text)
    result = optimize(tmp_path, "--balance", "workload:0.5")
    assert result.exit_code == 2
    assert expected in result.output.replace(str(tmp_path) + "/", "")
    assert "Traceback" not in result.output


def test_distance_table_missing_a_pair_is_named(tmp_path):
    pd.DataFrame({"id": ["u1", "u2", "u3"], "workload": [5, 6, 7]}).to_csv(tmp_path / "units.csv", index=False)
    pd.DataFrame({"id": ["r1", "r2"], "home_unit": ["u1", "u2"]}).to_csv(tmp_path / "reps.csv", index=False)
    (tmp_path / "d.csv").write_text("from,to,distance\nu1,u2,3\nu1,u3,4\nu2,x9,5\n")
    result = optimize(tmp_path, "--distances", str(tmp_path / "d.csv"))
    assert result.exit_code == 2 and "d.csv row 4 column 'to': 'x9' is not a unit id" in result.output
    (tmp_path / "d.csv").write_text("from,to,distance\nu1,u2,3\nu1,u3,4\n")
    result = optimize(tmp_path, "--distances", str(tmp_path / "d.csv"))
    assert result.exit_code == 2
    assert "no row gives the distance from 'r2' (or from its home unit 'u2') to unit 'u3'" in result.output


def test_a_design_becomes_a_scenario_with_one_territory_per_rep(baseline):
    loads = pd.Series({"r1": 300.0, "r2": 100.0, "r3": 0.0})
    scenario = design_scenario(baseline, loads)
    assert list(scenario.territories) == ["r1", "r2", "r3"]
    shares = {name: t.lead_share for name, t in scenario.territories.items()}
    assert shares["r1"] == pytest.approx(3 * shares["r2"], rel=1e-6) and 0 < shares["r3"] < 1e-3
    assert scenario.roles["ae"].headcount == {"r1": 1, "r2": 1, "r3": 1}
    sdrs = scenario.roles["sdr"].headcount
    assert sum(sdrs.values()) >= sum(baseline.roles["sdr"].headcount.values()) and min(sdrs.values()) >= 1


def test_contiguous_territories_are_connected_over_the_adjacency_list(tmp_path):
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import Delaunay

    units = write_state(tmp_path).assign(locked="")
    units.to_csv(tmp_path / "units.csv", index=False)
    points = units[["lon", "lat"]].to_numpy()
    homes = [int(units["population"].to_numpy().argmax())]  # spread homes: farthest-point sampling
    while len(homes) < 6:
        homes.append(int(np.min(np.linalg.norm(points[:, None] - points[homes][None], axis=2), axis=1).argmax()))
    pd.DataFrame({"id": [f"rep{k + 1}" for k in range(6)], "home_unit": units["id"].to_numpy()[homes]}).to_csv(tmp_path / "reps.csv", index=False)
    edges = {tuple(sorted((a, b))) for simplex in Delaunay(points).simplices for a in simplex for b in simplex if a != b}
    ids = units["id"].to_numpy()
    pd.DataFrame([(ids[a], ids[b]) for a, b in edges], columns=["unit", "neighbor"]).to_csv(tmp_path / "adjacency.csv", index=False)
    result = optimize(tmp_path, "--balance", "population:25%", "--contiguity", "--adjacency", str(tmp_path / "adjacency.csv"), "--no-price-of-balance")
    assert result.exit_code == 0, result.output
    rep = pd.read_csv(tmp_path / "out" / "assignment.csv", dtype=str).set_index("unit").loc[ids, "rep"].to_numpy()
    for name in np.unique(rep):
        members = np.flatnonzero(rep == name)
        inside = [(a, b) for a, b in edges if rep[a] == name and rep[b] == name]
        position = {u: i for i, u in enumerate(members)}
        graph = coo_array((np.ones(len(inside)), ([position[a] for a, _ in inside], [position[b] for _, b in inside])), shape=(len(members),) * 2)
        assert connected_components(graph, directed=False)[0] == 1, f"{name} is not connected"


def test_orlib_reader_takes_repeated_edges_last_and_names_bad_lines():
    inputs = read_orlib_pmed(" 3 3 1\n 1 2 5\n 2 3 4\n 1 2 2\n", "tiny.txt")
    assert inputs.place_centres and list(inputs.reps.index) == ["r0"] and list(inputs.units.index) == ["1", "2", "3"]
    np.testing.assert_allclose(inputs.distance, [[0, 2, 6], [2, 0, 4], [6, 4, 0]])
    with pytest.raises(InputError, match=r"tiny.txt line 3: '2 9 4' is not 'i j cost' with nodes in 1..3"):
        read_orlib_pmed("3 2 1\n1 2 5\n2 9 4\n", "tiny.txt")


# ----- --nearest: reps that no unit is offered to, or that cannot reach their lower bound -----


def line_of_units(folder: Path, workloads: list[float], reps: dict[str, float]) -> None:
    """Units one tenth of a degree apart along a meridian; reps at the given latitudes."""
    pd.DataFrame({"id": [f"u{i}" for i in range(len(workloads))], "workload": workloads,
                  "lat": [40 + 0.1 * i for i in range(len(workloads))], "lon": -75.0}).to_csv(folder / "units.csv", index=False)
    pd.DataFrame({"id": list(reps), "lat": list(reps.values()), "lon": -75.0}).to_csv(folder / "reps.csv", index=False)


def test_a_rep_offered_to_no_unit_is_named_not_a_traceback(tmp_path):
    line_of_units(tmp_path, [10] * 6, {"r1": 40.0, "r2": 40.5, "r3": 45.0})
    result = optimize(tmp_path, "--balance", "workload:0.1", "--nearest", "1")
    assert result.exit_code == 1, result.output
    assert "rep 'r3' is no unit's nearest 1" in result.output and "raise --nearest" in result.output
    assert "Traceback" not in result.output and "r1" not in result.output.split("infeasible:")[1]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "infeasible"


def test_a_rep_offered_to_no_unit_simply_gets_none_without_balance(tmp_path):
    line_of_units(tmp_path, [10] * 6, {"r1": 40.0, "r2": 40.5, "r3": 45.0})
    result = optimize(tmp_path, "--cap", "workload:40", "--nearest", "1")
    assert result.exit_code == 0, result.output
    assignment = pd.read_csv(tmp_path / "out" / "assignment.csv")
    assert "r3" not in set(assignment["rep"]) and assignment.groupby("rep").size().max() <= 4


def test_a_remote_rep_that_cannot_reach_its_lower_bound_is_named_with_the_remedy(tmp_path):
    # r3 is the nearest rep of the last unit only (workload 1), far below its share of 31 / 3 − 10%
    line_of_units(tmp_path, [10, 10, 10, 1], {"r1": 40.0, "r2": 40.1, "r3": 40.45})
    result = optimize(tmp_path, "--balance", "workload:0.1", "--nearest", "2")
    assert result.exit_code == 1, result.output
    assert "rep 'r3' can reach at most 1 of workload from its candidate units, below its lower bound 9.3 (its share −10%): raise --nearest or loosen --balance workload" in result.output
    assert "Traceback" not in result.output
    assert optimize(tmp_path, "--balance", "workload:0.1", "--nearest", "3").exit_code == 0  # every rep offered: feasible


def test_a_constant_load_row_is_feasible_or_caught_before_building(tmp_path):
    # r2's only candidate units carry no potential: its cap row has no variable and must not break the model
    units = pd.DataFrame({"potential": [5.0, 5.0, 0.0], "lat": np.nan, "lon": np.nan, "owner": None, "locked": False}, index=pd.Index(["a", "b", "c"], name="unit"))
    reps = pd.DataFrame({"weight": 1.0, "lat": np.nan, "lon": np.nan, "home_unit": ["a", "c"], "placed": True}, index=pd.Index(["r1", "r2"], name="rep"))
    inputs = TerritoryInputs(units, reps, ("potential",), np.array([[0.0, 1.0, 9.0], [9.0, 9.0, 0.0]]))
    design = design_territories(inputs, DesignSpec(caps=(Cap("potential", 20.0),), nearest=1), EXACT)
    assert list(design.assignment) == ["r1", "r1", "r2"]
    with pytest.raises(DesignInfeasible, match="rep 'r2' can reach at most 0 of potential"):
        design_territories(inputs, DesignSpec(balance=(Balance("potential", 0.5),), nearest=1), EXACT)


# ----- the price of balance at tolerances that scaling takes to 100% or beyond -----


def test_price_of_balance_skips_tolerances_scaled_to_100_percent_and_summary_is_written(tmp_path):
    line_of_units(tmp_path, [10, 12, 9, 11, 14], {"r1": 40.0, "r2": 40.4})
    result = optimize(tmp_path, "--balance", "workload:0.6")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rows = {row["scale"]: row for row in summary["price_of_balance"]}
    assert rows[2.0]["status"] == "skipped" and "120%" in rows[2.0]["reason"]
    assert rows[1.0]["tolerances"] == {"workload": 0.6} and rows[1.0]["status"] == "optimal"
    assert rows[None]["status"] == rows[0.5]["status"] == "optimal"


def test_summary_is_written_with_the_assignment_even_when_scoring_fails(tmp_path):
    line_of_units(tmp_path, [10, 12, 9, 11], {"r1": 40.0, "r2": 40.3})
    result = optimize(tmp_path, "--balance", "workload:0.2", "--scenario", "baseline", "--rep-role", "nobody", "-n", "1")
    assert result.exit_code == 2 and "role 'nobody'" in result.output
    assert (tmp_path / "out" / "assignment.csv").exists()
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "optimal"


# ----- row numbers as a spreadsheet shows them -----


def test_rows_after_a_blank_line_keep_their_spreadsheet_number_and_long_rows_are_refused(tmp_path):
    units = Table.parse("id,workload\nu1,5\n\nu2,x\n", "units.csv")
    reps = Table.parse("id\nr1\n", "reps.csv")
    with pytest.raises(InputError, match=r"units.csv row 4 column 'workload': 'x' is not a number"):
        read_inputs(units, reps, ("workload",))
    with pytest.raises(InputError) as refused:
        Table.parse("id,workload,lat,lon\nu1,5,40,-75\n\nu3,4,40,-75,EXTRA\nu4,4,40,-75,,\n", "units.csv")
    assert refused.value.problems == ["units.csv row 4: 5 cells, but the header has 4 columns (extra 'EXTRA')"]


def test_a_duplicate_id_names_both_rows_across_a_blank_line():
    units = Table.parse("id,workload\nu1,5\n\nu1,6\n", "units.csv")
    with pytest.raises(InputError, match=r"units.csv row 4 column 'id': duplicate id 'u1' \(first at row 2\)"):
        read_inputs(units, Table.parse("id\nr1\n", "reps.csv"), ("workload",))


# ----- the command's summaries and start-up -----


def test_simulated_utilisation_is_averaged_weighted_by_leads():
    scores = pd.DataFrame({
        "design": ["optimized", "optimized"], "territory": ["r1", "r2"], "leads_per_month": [30.0, 10.0],
        "response_hours_mean": [2.0, 6.0], "response_hours_p90": [5.0, 9.0], "won": [3.0, 1.0], "bookings": [30.0, 10.0],
        "utilization": [0.9, 0.5],
    })
    totals = simulated_totals(scores)["optimized"]
    assert totals["utilization_mean"] == pytest.approx(0.8)  # (0.9·30 + 0.5·10) / 40
    assert totals["response_hours_mean"] == pytest.approx(3.0)


def test_registering_the_command_loads_neither_pyomo_nor_matplotlib():
    code = "import sys, experiments.territory_command; print(sorted(m for m in ('pyomo', 'matplotlib', 'highspy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


# ----- today's design on the same measures; reasons that tell moves apart -----


def great_circle_km(lat1, lon1, lat2, lon2):
    """The haversine formula on a sphere of the mean Earth radius (6371.0088 km), written here independently."""
    p1, p2, dp, dl = np.radians(lat1), np.radians(lat2), np.radians(lat2 - lat1), np.radians(lon2 - lon1)
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2))


def test_todays_distance_and_loads_in_summary_equal_what_the_input_files_give(tmp_path):
    write_state(tmp_path)
    result = optimize(tmp_path, "--balance", "population:10%", "--no-price-of-balance")
    assert result.exit_code == 0, result.output
    units = pd.read_csv(tmp_path / "units.csv", dtype={"id": str})
    reps = pd.read_csv(tmp_path / "reps.csv", dtype={"home_unit": str}).set_index("id")
    home = units.set_index("id").loc[reps.loc[units["owner"], "home_unit"]]
    distance = great_circle_km(home["lat"].to_numpy(), home["lon"].to_numpy(), units["lat"].to_numpy(), units["lon"].to_numpy()).sum()
    today = json.loads((tmp_path / "out" / "summary.json").read_text())["today"]
    assert today["total_distance"] == pytest.approx(distance, rel=1e-9)
    loads = units.groupby("owner")["population"].sum()
    share = units["population"].sum() / len(reps)
    broken = set()
    for rep in reps.index:
        entry = today["rep_loads"][rep]
        assert entry["units"] == (units["owner"] == rep).sum()
        assert entry["population"]["load"] == pytest.approx(loads[rep]) and entry["population"]["share"] == pytest.approx(share)
        if abs(loads[rep] / share - 1) > 0.1:
            broken.add((rep, "upper" if loads[rep] > share else "lower"))
    assert {(v["rep"], v["bound"]) for v in today["balance_violations"]} == broken and broken
    assert "today" in result.output and "time limit 120 s per solve" in result.output


def test_moved_units_reasons_tell_close_distances_apart(tmp_path):
    # two reps 1 km apart; units owned by the far rep, 0.031 km and 0.034 km nearer the other (no balance)
    pd.DataFrame({"id": ["r1", "r2"], "lat": [40.0, 40.0], "lon": [-75.0, -74.98823]}).to_csv(tmp_path / "reps.csv", index=False)
    lons = [-74.99393, -74.99389, -74.99420]
    pd.DataFrame({"id": ["a", "b", "c"], "workload": [1, 1, 1], "lat": 40.0, "lon": lons, "owner": "r1"}).to_csv(tmp_path / "units.csv", index=False)
    result = optimize(tmp_path, "--cap", "workload:10")
    assert result.exit_code == 0, result.output
    moves = pd.read_csv(tmp_path / "out" / "assignment.csv", dtype=str).set_index("unit")
    gains = {u: great_circle_km(40.0, -75.0, 40.0, lon) - great_circle_km(40.0, -74.98823, 40.0, lon) for u, lon in zip("abc", lons)}
    for unit, gain in gains.items():
        if gain > 0:
            reason = moves.at[unit, "reason"]
            number = float(reason.split(" is ")[1].split(" km")[0].replace(",", ""))
            assert number == pytest.approx(gain, rel=1e-3), reason
    told = [moves.at[u, "reason"] for u, g in gains.items() if g > 0]
    assert len(told) >= 2 and len(set(told)) == len(told)


def test_a_unit_moved_to_a_farther_rep_names_the_bound_that_forced_it(tmp_path):
    write_state(tmp_path)
    result = optimize(tmp_path, "--balance", "population:10%", "--no-price-of-balance")
    assert result.exit_code == 0, result.output
    units = pd.read_csv(tmp_path / "units.csv", dtype={"id": str}).set_index("id")
    reps = pd.read_csv(tmp_path / "reps.csv", dtype={"home_unit": str}).set_index("id")
    moves = pd.read_csv(tmp_path / "out" / "assignment.csv", dtype={"unit": str}).set_index("unit")
    moved = moves[moves["moved"]]

    def km(rep, unit):
        home = units.loc[reps.at[rep, "home_unit"]]
        return great_circle_km(home["lat"], home["lon"], units.at[unit, "lat"], units.at[unit, "lon"])

    farther = [u for u in moved.index if km(moved.at[u, "rep"], u) > km(moved.at[u, "previous_rep"], u)]
    assert farther  # balance moves some counties away from their nearest rep here
    for unit in farther:
        assert "bound" in moved.at[unit, "reason"] and "population" in moved.at[unit, "reason"], moved.at[unit, "reason"]


# ----- the array model: exact where the Pyomo model is, an honest gap where it stops early -----


def pyomo_optimum(inputs: TerritoryInputs, spec: DesignSpec) -> float:
    import pyomo.environ as pyo

    from optimizers.solve import solve
    from optimizers.territories import _problem, build_model

    model = build_model(_problem(inputs, spec))
    model.objective = pyo.Objective(expr=model.objective_terms[spec.objective[0]], sense=pyo.minimize)
    result = solve(model, EXACT)
    assert result.status == "optimal"
    return result.objective


@pytest.mark.parametrize("tolerance", [0.05, 0.1, 0.3])
def test_array_designs_reach_the_optimum_of_the_pyomo_model(tmp_path, tolerance):
    inputs = county_inputs(tmp_path)
    spec = DesignSpec(balance=(Balance("population", tolerance),))
    design = design_territories(inputs, spec, EXACT)
    assert design.result.status == "optimal"
    assert design.compactness == pytest.approx(pyomo_optimum(inputs, spec), rel=1e-9)


def test_a_design_stopped_at_a_loose_gap_reports_a_bound_below_the_optimum(tmp_path):
    inputs = county_inputs(tmp_path)
    spec = DesignSpec(balance=(Balance("population", 0.05),))
    optimum = pyomo_optimum(inputs, spec)
    design = design_territories(inputs, spec, SolveOptions(rel_gap=0.2))
    assert design.result.bound <= optimum * (1 + 1e-9) and design.result.objective >= optimum * (1 - 1e-9)


def test_an_exact_share_that_integers_cannot_meet_ends_within_its_time_limit_with_one_line(tmp_path):
    write_state(tmp_path)
    result = optimize(tmp_path, "--balance", "population:0", "--time-limit", "3", "--no-price-of-balance")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] in ("infeasible", "no_solution") and summary["time_limit_seconds"] == 3


def test_locked_units_heavier_than_their_owners_bound_are_named_before_solving(tmp_path):
    pd.DataFrame({"id": ["a", "b", "c", "d"], "workload": [10, 10, 10, 10], "lat": [40, 40.1, 40.2, 40.3], "lon": -75.0,
                  "owner": ["r1", "r1", "r1", "r2"], "locked": ["yes", "yes", "yes", ""]}).to_csv(tmp_path / "units.csv", index=False)
    pd.DataFrame({"id": ["r1", "r2"], "lat": [40, 40.3], "lon": [-75, -75]}).to_csv(tmp_path / "reps.csv", index=False)
    result = optimize(tmp_path, "--balance", "workload:20%")
    assert result.exit_code == 1, result.output
    assert "rep 'r1': locked units 'a', 'b', 'c' carry workload 30, above its share +20% 24" in result.output
    assert "Traceback" not in result.output
