"""Work open on the first day: read from the scenario's snapshot, or carried over from a warm-up before the start.

A snapshot's deals run on from their stage and age. In the stage a deal is in, passing and failing compete: a deal
that has survived ``a`` days there passes with probability p·S_pass(a) / (p·S_pass(a) + (1 − p)·S_lost(a)), and its
remaining time is drawn from the chosen outcome's duration given that it exceeds ``a``; the stages after it are
drawn as for any deal. A deal in ``discovery`` likewise finishes its discovery, then becomes an opportunity or not.

Without a snapshot the simulation starts in steady state (the standard treatment of the initial transient: run
the model before the period of interest and discard that run). The organisation as it stands at the start — its
headcount with its attrition and backfill, funnel and lead volumes, with no hiring plan and none of the scenario's
tools — is simulated
for ``warm_up_months`` before the start; what is open at the end (leads waiting, SQLs and opportunities holding
slots) is carried in with the fate it had already drawn. The automatic length is the 99th percentile of the time an
accepted SQL holds a slot (discovery and stages, the largest over segments), in whole months, at least one: by
then the pipeline holds deals of every age but the oldest 1%, as it would after a long history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from engine.leads import CARRIED_DEALS, CarriedWork, stage_paths
from engine.results import LeadState, lead_states, opportunity_created
from engine.simulation import Replication
from engine.streams import Stream, generator
from scenarios.distributions import remaining_ppf
from scenarios.model import DAYS_PER_MONTH, InitialState, Scenario, for_segment
from scenarios.snapshot import DISCOVERY, Snapshot

#: Offset of the warm-up's replication key: its random streams are independent of every replication's own.
WARM_UP_KEY = 1 << 31
#: The longest automatic warm-up.
MAX_WARM_UP_MONTHS = 36
#: Bytes of warm-ups kept (per process): a planner's candidate plans differ in hires and tools only, so they share
#: them (a warm-up of the baseline holds about 0.05 MB, of the large scenario 0.5 MB).
WARM_UPS_KEPT_BYTES = 128 * 2**20
#: Holding times drawn per segment to find the automatic warm-up length (a fixed seed: the length is the scenario's).
_LENGTH_SAMPLE = 20_000


def carried_work(scenario: Scenario, seed: int, replication: int, months: int | None = None) -> CarriedWork | None:
    """The work open on the first day of a replication, or None for an empty start (``warm_up_months: 0``);
    ``months``: the warm-up's length when the caller took it from the scenario before a parameter draw."""
    state = scenario.initial_state
    if state.snapshot is not None:
        return from_snapshot(scenario, state.snapshot, seed, replication)
    months = warm_up_length(scenario) if months is None else months
    return warm_up(scenario, months, seed, replication) if months else None


#: The last scenario whose automatic warm-up length was worked out, and that length: every replication asks.
_lengths: list[tuple[Scenario, int]] = []


def warm_up_length(scenario: Scenario) -> int:
    """The scenario's warm-up in months: as it gives it, else by the automatic rule (``warm_up_months``), worked
    out once for the last scenario asked rather than once per replication."""
    given = scenario.initial_state.warm_up_months
    if given is not None:
        return given
    last = _lengths[0] if _lengths else None  # read once: another thread may replace it meanwhile
    if last is not None and last[0] is scenario:
        return last[1]
    months = warm_up_months(scenario)
    _lengths[:] = [(scenario, months)]
    return months


def warm_up_months(scenario: Scenario) -> int:
    """The automatic warm-up: the P99 of an accepted SQL's slot holding time, largest over segments, in months."""
    rng = np.random.default_rng(0)
    funnel, longest = scenario.funnel, 0.0
    for segment in scenario.segments:
        discovery = for_segment(funnel.discovery_days, segment).ppf(rng.random(_LENGTH_SAMPLE))
        opportunity = rng.random(_LENGTH_SAMPLE) < for_segment(funnel.opportunity_rate, segment)
        _, stages = stage_paths(scenario, segment, rng.random((2, len(funnel.stages), _LENGTH_SAMPLE)))
        longest = max(longest, float(np.percentile(discovery + np.where(opportunity, stages, 0.0), 99)))
    return min(MAX_WARM_UP_MONTHS, max(1, math.ceil(longest / DAYS_PER_MONTH)))


def warm_up_scenario(scenario: Scenario, months: int) -> Scenario:
    """The organisation as it stands at the start, over the ``months`` before it: the same headcount (with its
    attrition and backfill), funnel and lead volumes (the trend run backwards), no hiring plan and no tools, and
    deals closing at pace 1 (a closing pace's months are the horizon's; the carried deals' remaining times are
    their own days). Parameter draws are the caller's to apply: the scenario given is the one a replication runs."""
    total = scenario.start.year * 12 + scenario.start.month - 1 - months
    start = scenario.start.replace(year=total // 12, month=total % 12 + 1)
    roles = {name: role.model_copy(update={"hiring_plan": {}}) for name, role in scenario.roles.items()}
    sources = {name: source.model_copy(update={"monthly_volume": source.monthly_volume * (1.0 + source.trend) ** -months})
               for name, source in scenario.lead_sources.items()}
    return scenario.model_copy(update={
        "start": start, "horizon_months": months, "roles": roles, "lead_sources": sources, "automation": {},
        "funnel": scenario.funnel.model_copy(update={"closing_pace": None}),
        "initial_state": InitialState(warm_up_months=0), "parameter_draws": [],
    })


#: Finished warm-ups by (warm-up scenario's digest, seed, replication), least recently used first, and their bytes.
_warm_ups: OrderedDict[tuple[bytes, int, int], tuple[CarriedWork, int]] = OrderedDict()
_warm_ups_lock = threading.Lock()


def forget_warm_ups() -> None:
    """Drop every kept warm-up, so that the next replications simulate theirs again (a check of their determinism
    must compare two warm-ups simulated, not one read back). A forked worker starts so, with a lock of its own:
    one held by another thread at the fork would never be released there."""
    global _warm_ups_lock
    _warm_ups.clear()
    _warm_ups_lock = threading.Lock()


os.register_at_fork(after_in_child=forget_warm_ups)


def warm_up(scenario: Scenario, months: int, seed: int, replication: int) -> CarriedWork:
    """Simulate the warm-up and carry in what is open at its end, times shifted so that its end is day 0.

    SQLs still waiting for a slot are carried in as holding one from the start with their whole path ahead. The
    warm-up is a pure function of its own scenario, seed and replication: the most recent are kept, read only, up
    to ``WARM_UPS_KEPT_BYTES``, and scenarios that differ only in what the warm-up leaves out (hires, tools, the
    closing pace) share them.
    """
    before = warm_up_scenario(scenario, months)
    key = (hashlib.blake2b(before.model_dump_json().encode(), digest_size=16).digest(), seed, replication)
    with _warm_ups_lock:
        if key in _warm_ups:
            _warm_ups.move_to_end(key)
            return _warm_ups[key][0]
    carried = _simulate_warm_up(before, seed, replication)
    arrays = [getattr(carried, field.name) for field in dataclasses.fields(carried)]
    for array in arrays:
        array.setflags(write=False)
    with _warm_ups_lock:
        _warm_ups[key] = (carried, sum(array.nbytes for array in arrays))
        kept = sum(size for _, size in _warm_ups.values())
        while kept > WARM_UPS_KEPT_BYTES and len(_warm_ups) > 1:
            kept -= _warm_ups.popitem(last=False)[1][1]
    return carried


def _simulate_warm_up(before: Scenario, seed: int, replication: int) -> CarriedWork:
    """The warm-up scenario ``before`` simulated, and what is open at its end."""
    sim = Replication(before, seed, replication + WARM_UP_KEY)
    times = sim.run()
    leads, end = sim.leads, sim.horizon
    state = lead_states(sim, times)
    waiting = np.isin(state, [LeadState.WAITING_FIRST_TOUCH, LeadState.IN_FIRST_TOUCH])
    deals = np.isin(state, [LeadState.WAITING_OWNER, LeadState.IN_DISCOVERY, LeadState.OPEN_OPPORTUNITY])
    queued = np.isnan(times.accept)
    path = leads.discovery_days + np.where(leads.opportunity, leads.stage_days, 0.0)
    accepted = np.where(queued, end, times.accept)
    created = np.where(queued, np.where(leads.opportunity, end + leads.discovery_days, np.nan), opportunity_created(leads, times))
    return CarriedWork(
        lead_segment=leads.segment[waiting], lead_territory=leads.territory[waiting],
        lead_arrival=leads.time[waiting] - end,
        lead_row=np.full(int(waiting.sum()), -1, dtype=np.int64), deal_row=np.full(int(deals.sum()), -1, dtype=np.int64),
        deal_segment=leads.segment[deals], deal_territory=leads.territory[deals],
        deal_entered=(np.where(queued, times.touch_done, accepted) - end)[deals],
        deal_opened_at=(created - end)[deals],
        deal_won=(leads.won & leads.opportunity)[deals],
        deal_holding=(accepted + path - end)[deals],
        deal_amount=leads.amount[deals],
    )


@dataclass(frozen=True)
class SnapshotColumns:
    """A snapshot's rows as arrays: segments, stages (the funnel's, then discovery) and territories as positions in
    the scenario's (-1: no territory given)."""

    deal_row: np.ndarray
    deal_segment: np.ndarray
    deal_stage: np.ndarray
    deal_territory: np.ndarray
    deal_age: np.ndarray
    deal_amount: np.ndarray  # NaN: none given
    lead_row: np.ndarray
    lead_segment: np.ndarray
    lead_territory: np.ndarray
    lead_age: np.ndarray


#: The last snapshot converted, with the scenario names it was converted for, and its columns.
_converted: list[tuple[Snapshot, tuple, SnapshotColumns]] = []


def snapshot_columns(scenario: Scenario, snapshot: Snapshot) -> SnapshotColumns:
    """The snapshot's rows as arrays. Every replication of a scenario reads the same snapshot, and converting a
    large one costs as much as drawing its deals' fates, so the last one converted is kept."""
    names = (tuple(scenario.segments), tuple(s.name for s in scenario.funnel.stages), tuple(scenario.territories))
    last = _converted[0] if _converted else None  # read once: another thread may convert meanwhile
    if last is not None and last[0] is snapshot and last[1] == names:
        return last[2]
    segments, stages, territories = names
    deals, leads = snapshot.deals, snapshot.leads
    columns = SnapshotColumns(
        deal_row=np.array(deals.row, dtype=np.int64), deal_segment=_positions(segments, deals.segment, "segment"),
        deal_stage=_positions([*stages, DISCOVERY], deals.stage, "stage"),
        deal_territory=_positions(territories, deals.territory, "territory"),
        deal_age=np.array(deals.age_days, dtype=float), deal_amount=np.array(deals.amount, dtype=float),  # None: NaN
        lead_row=np.array(leads.row, dtype=np.int64), lead_segment=_positions(segments, leads.segment, "segment"),
        lead_territory=_positions(territories, leads.territory, "territory"), lead_age=np.array(leads.age_days, dtype=float),
    )
    for values in vars(columns).values():
        values.flags.writeable = False  # shared by every replication
    _converted[:] = [(snapshot, names, columns)]
    return columns


def _positions(names: Sequence[str], values: list[str | None], what: str) -> np.ndarray:
    """Each value's position in ``names``, -1 for None. A name not there is refused, as the snapshot reader does:
    a snapshot built or changed in code is not read by it."""
    positions = pd.Index(names).get_indexer(pd.Index(values, dtype=object)).astype(int)
    unknown = [value for value, at in zip(values, positions) if at < 0 and pd.notna(value)]
    if unknown:
        raise ValueError(f"snapshot: {what} {unknown[0]!r} is not one of the scenario's ({', '.join(names)})")
    return positions


def from_snapshot(scenario: Scenario, snapshot: Snapshot, seed: int, replication: int) -> CarriedWork:
    """The snapshot's waiting leads and deals, each deal's outcome and remaining time drawn given its age."""
    rng = generator(seed, replication, Stream.CARRIED, CARRIED_DEALS)
    rows = snapshot_columns(scenario, snapshot)
    segments, stages = list(scenario.segments), len(scenario.funnel.stages)
    segment, stage, age = rows.deal_segment, rows.deal_stage, rows.deal_age
    n = len(segment)
    draws = rng.random((2, stages + 1, n))  # per stage; the last row decides discovery
    won, holding, opened_at = np.zeros(n, dtype=bool), np.zeros(n), np.full(n, np.nan)
    for k, name in enumerate(segments):
        for where in np.unique(stage[segment == k]):
            group = np.flatnonzero((segment == k) & (stage == where))
            fate = _discovery_fates if where == stages else _stage_fates
            won[group], holding[group], opened_at[group] = fate(scenario, name, where, age[group], draws[..., group])
    amount = rows.deal_amount.copy()
    amount_draws = rng.random(n)
    for k, name in enumerate(segments):  # a deal without an amount: drawn from its segment's deal size
        group = np.flatnonzero((segment == k) & np.isnan(amount))
        amount[group] = scenario.segments[name].deal_size.ppf(amount_draws[group])
    return CarriedWork(
        lead_segment=rows.lead_segment, lead_territory=_territories(scenario, rows.lead_territory, rng),
        lead_arrival=-rows.lead_age, lead_row=rows.lead_row, deal_row=rows.deal_row,
        deal_segment=segment, deal_territory=_territories(scenario, rows.deal_territory, rng),
        deal_entered=-age, deal_opened_at=opened_at, deal_won=won, deal_holding=holding,
        deal_amount=amount,
    )


def _stage_fates(scenario: Scenario, segment: str, k: int, age: np.ndarray, draws: np.ndarray) -> tuple:
    """Deals ``age`` days into stage ``k``: (won, days until the slot is released, opened at)."""
    stage = scenario.funnel.stages[k]
    p = for_segment(stage.conversion, segment)
    to_pass, to_lose = for_segment(stage.duration_days, segment), stage.lost_duration(segment)
    still_passing, still_losing = p * (1.0 - to_pass.cdf(age)), (1.0 - p) * (1.0 - to_lose.cdf(age))
    total = still_passing + still_losing
    passes = draws[0, k] < np.divide(still_passing, total, out=np.full(len(age), p), where=total > 0)
    remaining = np.empty(len(age))
    for outcome, duration in ((passes, to_pass), (~passes, to_lose)):
        remaining[outcome] = remaining_ppf(duration, draws[1, k][outcome], age[outcome])
    later_won, later = stage_paths(scenario, segment, draws[:, :-1], first=k + 1)
    return passes & later_won, remaining + np.where(passes, later, 0.0), -age


def _discovery_fates(scenario: Scenario, segment: str, _: int, age: np.ndarray, draws: np.ndarray) -> tuple:
    """SQLs ``age`` days into discovery: they finish it, then become opportunities or not and go through the stages."""
    funnel = scenario.funnel
    remaining = remaining_ppf(for_segment(funnel.discovery_days, segment), draws[1, -1], age)
    opportunity = draws[0, -1] < for_segment(funnel.opportunity_rate, segment)
    won, stages = stage_paths(scenario, segment, draws[:, :-1])
    return won & opportunity, remaining + np.where(opportunity, stages, 0.0), np.where(opportunity, remaining, np.nan)


def _territories(scenario: Scenario, named: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Territory positions; an item without one (-1) is placed at random by the territories' lead shares."""
    shares = np.array([spec.lead_share for spec in scenario.territories.values()])
    placed = rng.choice(len(shares), size=len(named), p=shares / shares.sum())
    return np.where(named >= 0, named, placed)
