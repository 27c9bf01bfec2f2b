"""The conversion-uplift lever: it raises the conversion it names, by the share it says, with common random numbers."""

from __future__ import annotations

import numpy as np
import pytest

from engine import run_replication
from engine.simulation import Replication
from scenarios import ScenarioError, Scenario, load_scenario, validate_scenario

SHORT = ["horizon_months=6"]
OUTBOUND = list(load_scenario("baseline").lead_sources).index("outbound_mid_market")


def uplift(step: str, share: float, adoption: float = 1.0) -> dict[str, object]:
    """A conversion-uplift tool from the first month."""
    return {"kind": "conversion_uplift", "start_month": "2027-01", "step": step, "uplift": share, "adoption": [adoption]}


def with_tools(**tools: dict[str, object]) -> Scenario:
    data = load_scenario("baseline", SHORT).model_dump(mode="json")
    return validate_scenario({**data, "automation": tools}, "test")


def leads_of(scenario: Scenario, seed: int = 5):
    return Replication(scenario, seed, 0).leads


def test_mql_uplift_turns_only_extra_leads_into_mqls_in_proportion_to_adoption():
    plain, full, half = leads_of(with_tools()), leads_of(with_tools(tool=uplift("mql", 0.2))), leads_of(with_tools(tool=uplift("mql", 0.2, 0.5)))
    np.testing.assert_array_equal(plain.time, full.time)
    assert np.all(full.mql >= plain.mql) and np.all(half.mql <= full.mql) and np.all(half.mql >= plain.mql)
    n = plain.mql.sum()
    for leads, expected in ((full, 1.2), (half, 1.1)):
        # outbound leads qualify at rate 1 already, so the expectation is computed on inbound leads only
        inbound = leads.source != OUTBOUND
        ratio = leads.mql[inbound].sum() / plain.mql[inbound].sum()
        assert ratio == pytest.approx(expected, abs=4 * np.sqrt(expected * 0.2 / n))


def test_opportunity_and_stage_uplifts_raise_their_step_and_keep_every_lucky_lead():
    plain = leads_of(with_tools())
    opportunity = leads_of(with_tools(tool=uplift("opportunity", 0.25)))
    assert np.all(opportunity.opportunity >= plain.opportunity)
    assert opportunity.opportunity.mean() / plain.opportunity.mean() == pytest.approx(1.25, rel=0.03)
    proposal = leads_of(with_tools(tool=uplift("proposal", 0.2)))
    assert np.all(proposal.won >= plain.won)
    assert proposal.won.mean() / plain.won.mean() == pytest.approx(1.2, rel=0.04)
    # a deal that now passes the proposal goes on to negotiation: its path gets longer, never shorter
    assert np.all(proposal.stage_days >= plain.stage_days - 1e-9)
    np.testing.assert_array_equal(proposal.amount, plain.amount)


def test_sql_uplift_qualifies_every_lead_qualified_before_and_more():
    """The first-touch queue does not see what happens after the touch, so the same leads are touched at the same
    times, and the uplift only adds SQLs."""
    base = run_replication(with_tools(), 0, keep_log=True).lead_log
    more = run_replication(with_tools(tool=uplift("sql", 0.3)), 0, keep_log=True).lead_log
    np.testing.assert_array_equal(base["touch_day"].to_numpy(), more["touch_day"].to_numpy())
    was, now = base["sql_day"].notna().to_numpy(), more["sql_day"].notna().to_numpy()
    assert np.all(now >= was)
    assert now.sum() / was.sum() == pytest.approx(1.3, rel=0.06)


def test_a_tools_adoption_draws_do_not_depend_on_the_other_tools():
    alone = leads_of(with_tools(a=uplift("mql", 0.1, 0.5)))
    with_other = leads_of(with_tools(b=uplift("sql", 0.1, 0.5), a=uplift("mql", 0.1, 0.5)))
    np.testing.assert_array_equal(alone.adoption[0], with_other.adoption[1])
    np.testing.assert_array_equal(alone.mql, with_other.mql)


@pytest.mark.parametrize(("change", "message"), [
    ({"step": "demo"}, "automation.tool.step: unknown funnel step 'demo'"),
    ({"uplift": 1.5}, "automation.tool.conversion_uplift.uplift: Input should be less than or equal to 1"),
    ({"uplift": 0}, "automation.tool.conversion_uplift.uplift: Input should be greater than 0"),
])
def test_bad_uplift_names_the_key(change, message):
    with pytest.raises(ScenarioError) as error:
        with_tools(tool=uplift("mql", 0.1) | change)
    assert any(problem.startswith(message) for problem in error.value.problems), error.value.problems
