"""Starting from today: a snapshot's open deals run off as the fitted distributions say given their age, reps keep
their tenure, bad snapshots are refused row by row, and scenarios without a snapshot start in steady state."""

from __future__ import annotations

import copy
import typing
import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy import stats

from engine import simulate
from engine import initial
from engine.initial import carried_work, forget_warm_ups, warm_up_months
from engine.leads import Origin
from engine.simulation import Replication
from scenarios import ScenarioError, load_scenario

P_WIN = 0.4
WIN_DAYS = stats.gamma(2.0, scale=30.0)  # time to win for those who pass: median 50 days
LOST_DAYS = stats.lognorm(0.8, scale=np.exp(3.0))  # time to close lost: median 20 days, so old deals are mostly winners
OPPORTUNITY_RATE = 0.7

RUNOFF = {
    "name": "runoff",
    "start": "2027-01-01",
    "horizon_months": 6,
    "seed": 3,
    "segments": {"smb": {"deal_size": {"dist": "fixed", "value": 1000}}},
    "territories": {"north": {}, "south": {}},
    "lead_sources": {"none": {"segment": "smb", "monthly_volume": 0}},
    "funnel": {
        "mql_rate": {"default": 1.0},
        "sql_rate": {"default": 0.3},
        "opportunity_rate": {"default": OPPORTUNITY_RATE},
        "discovery_days": {"default": {"dist": "exponential", "mean": 12.0}},
        "stages": [{
            "name": "close",
            "conversion": {"default": P_WIN},
            "duration_days": {"default": {"dist": "gamma", "shape": 2.0, "scale": 30.0}},
            "lost_duration_days": {"default": {"dist": "lognormal", "mu": 3.0, "sigma": 0.8}},
        }],
        "response_decay": None,
    },
    "roles": {
        "sdr": {"works": "leads", "headcount": {"north": 1, "south": 1}, "handling_hours": {"dist": "fixed", "value": 1}},
        "ae": {"works": "opportunities", "headcount": {"north": 2, "south": 2}, "open_opportunity_limit": 5,
               "ramp": [0.25, 0.5, 0.75], "salary_monthly": 10000, "hiring_cost": 5000},
    },
    "initial_state": {"pipeline": "pipeline.csv"},
}


def write_case(folder, rows: list[str], scenario: dict = RUNOFF) -> str:
    (folder / "pipeline.csv").write_text("\n".join(["kind,id,segment,territory,stage,age_days,amount,owner,role,tenure_months", *rows]) + "\n")
    (folder / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    return str(folder / "scenario.yaml")


MONTH_ENDS = np.cumsum([31, 28, 31, 30, 31, 30])  # days from the start to each month's end
REPLICATIONS = 20


def cumulative(folder, rows: list[str], column: str) -> np.ndarray:
    """Mean over replications of a monthly column summed up to each month's end."""
    monthly = simulate(load_scenario(write_case(folder, rows)), REPLICATIONS).monthly
    return monthly.groupby("replication")[column].cumsum().to_numpy().reshape(REPLICATIONS, -1).mean(axis=0)


def assert_within_monte_carlo(simulated: np.ndarray, probability: np.ndarray) -> None:
    """``probability``: per item and month end, the chance of the event by then; the simulated mean count must lie
    within 4 standard errors of the expected count."""
    expected = probability.sum(axis=0)
    error = np.sqrt((probability * (1 - probability)).sum(axis=0) / REPLICATIONS)
    assert np.all(np.abs(simulated - expected) < 4 * error + 0.5), (simulated, expected)


def test_runoff_of_open_deals_equals_the_conditional_expectation(tmp_path):
    """Open deals of every age and no new leads: cumulative won and lost by each month's end equal the competing
    risks' conditional expectation given the age survived, P(win by a + t | open at a) = p·(F_win(a + t) − F_win(a))
    / (p·S_win(a) + (1 − p)·S_lost(a)); the unconditional figure (each deal taken as new) is far outside."""
    ages = np.linspace(0.0, 240.0, 1500)
    rows = [f"opportunity,d{i},smb,{'north' if i % 2 else ''},close,{a:.3f},,,," for i, a in enumerate(ages)]
    still_open = P_WIN * WIN_DAYS.sf(ages) + (1 - P_WIN) * LOST_DAYS.sf(ages)
    won_by = P_WIN * (WIN_DAYS.cdf(ages[:, None] + MONTH_ENDS) - WIN_DAYS.cdf(ages[:, None])) / still_open[:, None]
    lost_by = (1 - P_WIN) * (LOST_DAYS.cdf(ages[:, None] + MONTH_ENDS) - LOST_DAYS.cdf(ages[:, None])) / still_open[:, None]
    won = cumulative(tmp_path, rows, "won")
    assert_within_monte_carlo(won, won_by)
    assert_within_monte_carlo(cumulative(tmp_path, rows, "lost"), lost_by)
    unconditional = len(ages) * P_WIN * WIN_DAYS.cdf(MONTH_ENDS[-1])
    assert abs(won[-1] - unconditional) > 10 * np.sqrt(won_by[:, -1].sum())


def test_sqls_in_discovery_finish_it_given_their_age(tmp_path):
    """SQLs part-way through discovery (a gamma, not memoryless) become opportunities as its conditional law says."""
    ages = np.linspace(0.0, 30.0, 600)
    scenario = copy.deepcopy(RUNOFF)
    scenario["funnel"]["discovery_days"] = {"default": {"dist": "gamma", "shape": 3.0, "scale": 6.0}}
    discovery = stats.gamma(3.0, scale=6.0)
    rows = [f"opportunity,q{i},smb,south,discovery,{a:.3f},,,," for i, a in enumerate(ages)]
    created = OPPORTUNITY_RATE * (discovery.cdf(ages[:, None] + MONTH_ENDS) - discovery.cdf(ages[:, None]))
    write_case(tmp_path, rows, scenario)
    monthly = simulate(load_scenario(tmp_path / "scenario.yaml"), REPLICATIONS).monthly
    simulated = monthly.groupby("replication")["opportunities"].cumsum().to_numpy().reshape(REPLICATIONS, -1).mean(axis=0)
    assert_within_monte_carlo(simulated, created / discovery.sf(ages)[:, None])


def test_leads_waiting_in_the_snapshot_are_worked_as_mqls(tmp_path):
    """A waiting lead is an MQL whatever the MQL rate: its first touch takes the role's handling time, and one that
    qualifies and passes discovery has a discovery and a stage path of positive length."""
    scenario = copy.deepcopy(RUNOFF)
    scenario["funnel"]["mql_rate"] = {"default": 0.1}
    rows = [f"lead,w{i},smb,north,,{i % 10},,,," for i in range(300)]
    loaded = load_scenario(write_case(tmp_path, rows, scenario))
    sim = Replication(loaded, 3, 0, carried_work(loaded, 3, 0))
    waiting = sim.leads.origin == Origin.WAITING
    assert waiting.sum() == 300 and sim.leads.mql[waiting].all()
    assert (sim.leads.handling_hours[waiting] == 1.0).all()
    qualifies = waiting & (sim.leads.quality < 0.3) & sim.leads.opportunity
    assert qualifies.sum() > 30 and (sim.leads.discovery_days[qualifies] > 0).all() and (sim.leads.stage_days[qualifies] > 0).all()


def test_reps_in_the_snapshot_keep_their_tenure(tmp_path):
    """Reps listed with their tenure replace the role's headcount: in the first month an AE 0.5 months in ramps at
    0.25 and one 2.2 months in at 0.75, and no hiring cost is charged for them."""
    rows = ["rep,,,north,,,,,ae,0.5", "rep,,,south,,,,,ae,2.2", "rep,,,,,,,,sdr,30"]
    scenario = load_scenario(write_case(tmp_path, rows))
    first = simulate(scenario, 1).monthly.iloc[0]
    assert first["headcount_ae"] == 2 and first["headcount_sdr"] == 1
    assert first["ramped_ae"] == pytest.approx(0.25 + 0.75)
    assert first["cost"] == pytest.approx(2 * 10000)


@pytest.mark.parametrize("row, column", [
    ("opportunity,x,mid,north,close,3,,,,", "segment"),
    ("opportunity,x,smb,east,close,3,,,,", "territory"),
    ("opportunity,x,smb,north,proposal,3,,,,", "stage"),
    ("opportunity,x,smb,north,close,-3,,,,", "age_days"),
    ("opportunity,x,smb,north,close,abc,,,,", "age_days"),
    ("lead,x,smb,north,,,,,,", "age_days"),
    ("rep,,,north,,,,,cfo,3", "role"),
    ("deal,x,smb,north,close,3,,,,", "kind"),
])
def test_a_bad_snapshot_row_is_named_by_file_row_and_column(tmp_path, row, column):
    path = write_case(tmp_path, ["opportunity,ok,smb,north,close,3,,,,", row])
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert len(error.value.problems) == 1, error.value.problems
    assert "pipeline.csv" in error.value.problems[0] and "row 3" in error.value.problems[0] and f"column {column}" in error.value.problems[0]


def test_the_command_refuses_a_bad_snapshot_with_one_line_per_problem(tmp_path):
    path = write_case(tmp_path, ["opportunity,a,mid,north,close,3,,,,", "opportunity,b,smb,north,close,-1,,,,"])
    completed = subprocess.run([sys.executable, "-m", "experiments", "simulate", path, "--out", str(tmp_path / "out")],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "row 3, column age_days" in lines[0], completed.stderr  # rows are read before references
    assert "Traceback" not in completed.stderr


def test_baseline_starts_in_steady_state():
    """With the automatic warm-up, the baseline's first month books within 15% of the mean of months 4 to 18 (an
    empty start books a few percent of it), and months 6 to 18 match the empty start within Monte Carlo error."""
    scenario = load_scenario("baseline")
    assert 1 <= warm_up_months(scenario) <= 12
    warm = simulate(scenario, 60, seed=11).monthly
    cold = simulate(load_scenario("baseline", ["initial_state.warm_up_months=0"]), 60, seed=11).monthly
    for monthly, steady in ((warm, True), (cold, False)):
        bookings = monthly.groupby("month")["bookings"].mean().to_numpy()
        assert (abs(bookings[0] / bookings[3:].mean() - 1) < 0.15) == steady
    later = [frame[frame["month"] >= "2027-06"].groupby("replication")["won"].sum() for frame in (warm, cold)]
    difference = later[0].mean() - later[1].mean()
    assert abs(difference) < 4 * np.sqrt(later[0].var() / 60 + later[1].var() / 60)


def test_a_kept_warm_up_is_the_one_simulated_afresh():
    """Warm-ups are kept per process and shared where the warm-up is the same: a plan with hires shares the
    baseline's; another starting headcount or lead volume has its own. Each gives the results it gives in a fresh
    process, whatever ran before it, and a kept warm-up cannot be written to."""
    horizon = "horizon_months=2"
    variants = [load_scenario("baseline", [horizon, *changes]) for changes in
                ([], ["roles.sdr.hiring_plan.2027-01=4"], ["roles.ae.headcount.north=9"], ["lead_sources.inbound_smb.monthly_volume=1200"])]
    fresh = []
    for scenario in variants:
        forget_warm_ups()
        fresh.append(simulate(scenario, 2, seed=5).monthly)
    assert not fresh[0].equals(fresh[1]) and not fresh[0].equals(fresh[2]) and not fresh[0].equals(fresh[3])
    forget_warm_ups()
    for scenario, expected in zip(variants + variants[::-1], fresh + fresh[::-1]):
        assert simulate(scenario, 2, seed=5).monthly.equals(expected)
    assert len(initial._warm_ups) == 3 * 2  # the hires' plan took the baseline's
    carried = carried_work(variants[0], 5, 0)
    with pytest.raises(ValueError, match="read-only"):
        carried.deal_holding[0] = 0.0


def test_warm_ups_kept_stay_within_their_memory(monkeypatch):
    """Kept warm-ups stop at their byte budget, the most recent kept; a run past it still gives its results."""
    scenario = load_scenario("baseline", ["horizon_months=1"])
    forget_warm_ups()
    expected = simulate(scenario, 3, seed=4).monthly
    monkeypatch.setattr(initial, "WARM_UPS_KEPT_BYTES", min(size for _, size in initial._warm_ups.values()))  # room for one
    forget_warm_ups()
    assert simulate(scenario, 3, seed=4).monthly.equals(expected)
    assert [key[2] for key in initial._warm_ups] == [2]


def test_the_start_state_is_reproducible_and_every_item_ends_in_one_state(tmp_path):
    """The same seed gives identical results with a snapshot and with a warm-up; every new lead and every carried
    item ends in exactly one state."""
    rows = [f"opportunity,d{i},smb,north,close,{i},,,," for i in range(40)] + [f"lead,l{i},smb,south,,{i / 10},,,," for i in range(30)]
    for scenario in (load_scenario(write_case(tmp_path, rows)), load_scenario("baseline", ["horizon_months=3"])):
        first = simulate(scenario, 2, seed=9)
        forget_warm_ups()  # the warm-up simulated again, not read back
        second = simulate(scenario, 2, seed=9)
        assert first.monthly.equals(second.monthly) and first.states.equals(second.states)
    snapshot_run = simulate(load_scenario(write_case(tmp_path, rows)), 1, seed=9)
    assert snapshot_run.states.iloc[0].sum() == 70  # no new leads: the 40 deals and 30 waiting leads


EXAMPLES = {
    "exponential": {"mean": 5.0}, "gamma": {"shape": 2.0, "scale": 3.0}, "lognormal": {"mu": 2.0, "sigma": 0.7},
    "weibull": {"shape": 1.5, "scale": 8.0}, "loglogistic": {"shape": 2.5, "scale": 10.0},
    "empirical": {"values": [1.0, 2.0, 2.0, 7.0]}, "fixed": {"value": 4.0},
}


def test_every_distribution_has_a_cdf_that_its_conditional_draws_respect():
    """Every distribution a scenario can name (a new one must be added here) has a cdf that inverts its ppf, and
    draws given survival past an age never fall before it: the remaining time's law is the truncated one."""
    from pydantic import TypeAdapter

    from scenarios.distributions import Distribution, remaining_ppf

    union = typing.get_args(typing.get_args(Distribution)[0])
    assert {cls.model_fields["dist"].annotation.__args__[0] for cls in union} == set(EXAMPLES)
    u = np.random.default_rng(0).random(20_000)
    for name, params in EXAMPLES.items():
        distribution = TypeAdapter(Distribution).validate_python({"dist": name, **params})
        values = distribution.ppf(u)
        assert np.all(distribution.cdf(values) >= u - 1e-9), name
        age = float(np.median(values))
        remaining = remaining_ppf(distribution, u, np.full(len(u), age))
        if name not in ("fixed", "empirical"):
            survivors = values[values > age] - age
            assert np.all(remaining >= 0)
            assert abs(np.median(remaining) - np.median(survivors)) < 0.05 * np.median(survivors), name


def test_a_snapshot_changed_in_code_cannot_name_what_the_scenario_lacks(tmp_path):
    """The reader refuses unknown names in a file; a snapshot built or changed in code is refused when converted,
    not read as a lost deal, a dropped lead or a random territory."""
    from engine.initial import snapshot_columns

    loaded = load_scenario(write_case(tmp_path, ["opportunity,d1,smb,north,close,10,1000,,,", "lead,l1,smb,,,2,,,,"]))
    snapshot = loaded.initial_state.snapshot
    for kind, field, value in [("deals", "segment", "nowhere"), ("deals", "stage", "nowhere"), ("leads", "territory", "nowhere")]:
        changed = getattr(snapshot, kind).model_copy(update={field: [value]})
        with pytest.raises(ValueError, match=f"{field} 'nowhere' is not one of the scenario's"):
            snapshot_columns(loaded, snapshot.model_copy(update={kind: changed}))
    assert snapshot_columns(loaded, snapshot).lead_territory.tolist() == [-1]  # no territory: placed later by shares
