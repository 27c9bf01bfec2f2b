"""The engine against queueing theory: configured as M/M/c it must reproduce Erlang C and Little's law."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import run_replication
from engine.calendar import month_starts
from tests.conftest import mmc


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C), via the stable Erlang B recursion."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    utilization = offered_load / servers
    return blocking / (1.0 - utilization * (1.0 - blocking))


def test_erlang_c_formula_against_known_values():
    # Textbook values: M/M/1 waits with probability ρ; c=2, a=1 gives 1/3.
    assert erlang_c(1, 0.6) == pytest.approx(0.6)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "arrivals_per_hour, servers, months, replications",
    [(1.0, 2, 6, 8), (3.0, 4, 6, 8), (5.4, 6, 12, 10)],  # ρ = 0.5, 0.75 and the heavy 0.9
)
def test_mmc_matches_erlang_c(arrivals_per_hour, servers, months, replications):
    scenario = mmc(arrivals_per_hour, servers, months=months)
    waits, wait_probabilities = [], []
    for replication in range(replications):
        log = run_replication(scenario, replication, keep_log=True).lead_log
        response = log["response_hours"].dropna()
        waits.append(response.mean())
        wait_probabilities.append((response > 0).mean())
    offered = arrivals_per_hour * 1.0
    p_wait = erlang_c(servers, offered)
    mean_wait = p_wait / (servers - offered)
    for estimates, truth in ((waits, mean_wait), (wait_probabilities, p_wait)):
        standard_error = np.std(estimates, ddof=1) / np.sqrt(len(estimates))
        assert abs(np.mean(estimates) - truth) < 4 * standard_error + 0.01 * truth, (np.mean(estimates), truth, standard_error)


def test_littles_law_and_utilization():
    """The reported backlog is the queue length of queueing theory: its time average matches Erlang's
    L_q = C(c, a)·ρ / (1 − ρ) and, by Little's law, λ·W from the reported response time; the busy share, measured
    from the reps' work, equals ρ."""
    scenario = mmc(3.0, 4, months=6)
    month_days = np.diff(month_starts(scenario))
    backlogs, utilizations = [], []
    for replication in range(6):
        result = run_replication(scenario, replication)
        arrival_rate = result.totals["leads"] / (month_days.sum() * 24.0)
        backlog = np.average(result.monthly["backlog_mean"], weights=month_days)
        assert backlog == pytest.approx(arrival_rate * result.totals["response_hours_mean"], rel=0.02)
        backlogs.append(backlog)
        utilizations.append(np.average(result.monthly["utilization_server"], weights=month_days))
    for estimates, truth in ((backlogs, erlang_c(4, 3.0) * 0.75 / (1 - 0.75)), (utilizations, 0.75)):
        standard_error = np.std(estimates, ddof=1) / np.sqrt(len(estimates))
        assert abs(np.mean(estimates) - truth) < 4 * standard_error + 0.01 * truth, (np.mean(estimates), truth)


@settings(max_examples=8, deadline=None)
@given(load=st.floats(0.3, 0.95), servers=st.integers(1, 4), seed=st.integers(0, 1000))
def test_more_reps_never_lengthen_waits(load, servers, seed):
    """Same seed, same leads and service needs: one more rep never raises the mean response time."""
    arrivals = load * servers
    waits = [run_replication(mmc(arrivals, c, months=1, seed=seed), 0).totals["response_hours_mean"] for c in (servers, servers + 1, servers + 2)]
    assert waits[0] >= waits[1] - 1e-9 and waits[1] >= waits[2] - 1e-9
