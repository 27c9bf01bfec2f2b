"""Every lead of a replication, drawn up front in vectorised blocks.

Arrivals are a non-homogeneous Poisson process with a piecewise-constant daily rate (monthly volume, trend,
seasonality, weekday weights). Everything about a lead that does not depend on the queue (is it an MQL, its
quality, handling time, discovery outcome, stage path, deal size, whether tools are used on it) is drawn here
from its own stream, so the same lead meets the same luck in every scenario compared with the same seed. Tools that
raise a conversion (``conversion_uplift``) act here too: the lead's uniform is compared against the raised probability.
A tool's adoption draws are keyed by its name, so they do not change when other tools are added or removed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Sequence

import numpy as np

from engine.automation import conversion_multiplier, levers_used
from engine.people import Rep, productivity
from engine.streams import Stream, generator
from scenarios.distributions import Distribution
from scenarios.model import DAYS_PER_MONTH, Scenario, for_segment


#: Sub-keys of the CARRIED stream: waiting leads' draws, and the fates of a snapshot's deals.
CARRIED_LEADS, CARRIED_DEALS = 0, 1


class Origin(IntEnum):
    """Where a lead comes from: it arrives within the horizon, or it was open on the first day."""

    NEW = 0
    WAITING = 1  # an MQL carried in, waiting for its first touch
    DEAL = 2  # an SQL carried in that holds an opportunity slot, its fate already drawn


@dataclass(frozen=True)
class CarriedWork:
    """Work open on the first day (``engine.initial``): leads waiting for a first touch, and deals holding slots.

    Times are days since the start (negative: before it). A deal's fate is decided: whether it becomes an
    opportunity (``opened_at``, NaN if it does not) and is won, and when it releases its slot (``holding``).
    """

    lead_segment: np.ndarray
    lead_territory: np.ndarray
    lead_arrival: np.ndarray
    lead_row: np.ndarray  # the snapshot file's row (-1: from a warm-up)
    deal_row: np.ndarray
    deal_segment: np.ndarray
    deal_territory: np.ndarray
    deal_entered: np.ndarray  # when the deal entered the state it is in on the first day
    deal_opened_at: np.ndarray
    deal_won: np.ndarray
    deal_holding: np.ndarray
    deal_amount: np.ndarray


@dataclass(frozen=True)
class Leads:
    """Per-lead arrays, sorted by arrival time. Durations in days, amounts in currency units."""

    time: np.ndarray
    segment: np.ndarray  # index into scenario.segments
    territory: np.ndarray  # index into scenario.territories
    source: np.ndarray  # index into scenario.lead_sources
    mql: np.ndarray  # bool: passes marketing qualification
    quality: np.ndarray  # uniform; the lead becomes an SQL when quality < sql rate × response decay
    score_noise: np.ndarray  # standard normal, the part of a lead score unrelated to quality
    handling_hours: np.ndarray  # first-touch work at full productivity
    opportunity: np.ndarray  # bool: an accepted SQL becomes an opportunity
    discovery_days: np.ndarray
    won: np.ndarray  # bool: the opportunity passes every stage
    stage_days: np.ndarray  # opportunity creation → close (won, or lost at the stage it failed)
    amount: np.ndarray  # deal size if won
    adoption: np.ndarray  # (levers × leads) uniforms: a tool is used on the lead when below its adoption share
    origin: np.ndarray  # Origin
    opened_at: np.ndarray  # carried deals: when the opportunity was (or will be) created; NaN otherwise
    snapshot_row: np.ndarray  # the snapshot file's row of an item carried in from it; -1 otherwise

    def __len__(self) -> int:
        return len(self.time)


def draw_leads(scenario: Scenario, months: np.ndarray, reps: list[Rep], seed: int, replication: int,
               carried: CarriedWork | None = None) -> Leads:
    """All leads of the horizon for one replication (``reps``, the roster, places outbound leads), after the work
    ``carried`` in from before the start."""
    parts = [
        _draw_source(scenario, index, _daily_rates(scenario, index, months, reps), months, seed, replication)
        for index in range(len(scenario.lead_sources))
    ]
    if carried is not None:
        parts += [_carried_leads(scenario, carried, months, seed, replication), _carried_deals(scenario, carried)]
    columns = {name: np.concatenate([part[name] for part in parts], axis=-1) for name in parts[0]}
    order = np.argsort(columns["time"], kind="stable")
    return Leads(**{name: values[..., order] for name, values in columns.items()})


def daily_rate(scenario: Scenario, source_index: int, months: np.ndarray) -> np.ndarray:
    """Expected leads of a source on each day of the horizon, before the split over territories.

    For an outbound source this is the rate per fully ramped rep of the producing role.
    """
    source = list(scenario.lead_sources.values())[source_index]
    days = np.arange(int(months[-1]))
    month = np.searchsorted(months, days, side="right") - 1
    calendar_month = (scenario.start.month - 1 + month) % 12
    weekday = (scenario.start.weekday() + days) % 7
    weekday_weight = np.asarray(source.weekday_weights) / np.mean(source.weekday_weights)
    return (
        source.monthly_volume / DAYS_PER_MONTH
        * (1.0 + source.trend) ** month
        * np.asarray(source.seasonality)[calendar_month]
        * weekday_weight[weekday]
    )


def territory_shares(scenario: Scenario, source_index: int) -> np.ndarray:
    """How an inbound source's leads split over the territories (in scenario order; sums to 1)."""
    source = list(scenario.lead_sources.values())[source_index]
    weights = source.territories or {t: spec.lead_share for t, spec in scenario.territories.items()}
    shares = np.array([weights.get(t, 0.0) for t in scenario.territories])
    return shares / shares.sum()


def _daily_rates(scenario: Scenario, source_index: int, months: np.ndarray, reps: list[Rep]) -> np.ndarray:
    """Expected leads of a source per day (rows) and territory (columns)."""
    rate = daily_rate(scenario, source_index, months)
    producer = list(scenario.lead_sources.values())[source_index].produced_by
    if producer is not None:
        return rate[:, None] * _ramped_reps_by_day(scenario, producer, reps, months)
    return rate[:, None] * territory_shares(scenario, source_index)[None, :]


def _ramped_reps_by_day(scenario: Scenario, role_name: str, reps: list[Rep], months: np.ndarray) -> np.ndarray:
    """Fully ramped equivalents of a role on staff each day (middle of the day) in each territory."""
    role, territories = scenario.roles[role_name], list(scenario.territories)
    days = np.arange(int(months[-1]))
    month = np.searchsorted(months, days, side="right") - 1
    ramped = np.zeros((len(days), len(territories)))
    noon = days + 0.5
    for rep in reps:
        if rep.role == role_name:
            on_staff = (noon >= rep.start) & (noon < rep.end)
            share = np.array([productivity(rep, m, role) for m in range(scenario.horizon_months)])[month]
            ramped[:, territories.index(rep.territory)] += on_staff * share
    return ramped


def _draw_source(
    scenario: Scenario, index: int, rates: np.ndarray, months: np.ndarray, seed: int, replication: int
) -> dict[str, np.ndarray]:
    arrivals = generator(seed, replication, Stream.ARRIVALS, index)
    counts = arrivals.poisson(rates).ravel()  # day-major: (day, territory) cells in order
    n = int(counts.sum())
    cells = np.repeat(np.arange(counts.size), counts)
    time = (cells // rates.shape[1]).astype(float) + arrivals.random(n)
    segment = list(scenario.lead_sources.values())[index].segment
    return _describe(scenario, index, segment, time, cells % rates.shape[1], months,
                     lambda stream, *subkeys: generator(seed, replication, stream, index, *subkeys))


def _carried_leads(scenario: Scenario, carried: CarriedWork, months: np.ndarray, seed: int, replication: int) -> dict[str, np.ndarray]:
    """The waiting MQLs carried in, drawn like new leads of their segment from streams of their own."""
    parts = []
    for segment_index, segment in enumerate(scenario.segments):
        mine = carried.lead_segment == segment_index
        part = _describe(scenario, _source_of(scenario, segment), segment, carried.lead_arrival[mine],
                         carried.lead_territory[mine], months,
                         lambda stream, *subkeys: generator(seed, replication, Stream.CARRIED, CARRIED_LEADS, segment_index, stream, *subkeys),
                         already_mql=True)
        part["origin"][:] = Origin.WAITING
        part["snapshot_row"] = carried.lead_row[mine]
        parts.append(part)
    return {name: np.concatenate([part[name] for part in parts], axis=-1) for name in parts[0]}


def _carried_deals(scenario: Scenario, carried: CarriedWork) -> dict[str, np.ndarray]:
    """The deals carried in: their fates are decided, so only the slot they hold until ``holding`` remains to run."""
    n = len(carried.deal_segment)
    opportunity = ~np.isnan(carried.deal_opened_at)
    sources = np.array([_source_of(scenario, s) for s in scenario.segments])
    return {
        "time": carried.deal_entered,
        "segment": carried.deal_segment,
        "territory": carried.deal_territory,
        "source": sources[carried.deal_segment] if n else np.zeros(0, dtype=int),
        "mql": np.ones(n, dtype=bool),
        "quality": np.zeros(n),
        "score_noise": np.zeros(n),
        "handling_hours": np.zeros(n),
        "opportunity": opportunity,
        "discovery_days": np.where(opportunity, 0.0, carried.deal_holding),
        "won": carried.deal_won,
        "stage_days": np.where(opportunity, carried.deal_holding, 0.0),
        "amount": carried.deal_amount,
        "adoption": np.ones((len(scenario.automation), n)),  # no tool acts on work already done
        "origin": np.full(n, Origin.DEAL, dtype=np.int8),
        "opened_at": carried.deal_opened_at,
        "snapshot_row": carried.deal_row,
    }


def _source_of(scenario: Scenario, segment: str) -> int:
    """The first lead source of a segment (0 if none): whose name a carried lead is logged under."""
    return next((i for i, source in enumerate(scenario.lead_sources.values()) if source.segment == segment), 0)


def _describe(
    scenario: Scenario, index: int, segment_name: str, time: np.ndarray, territory: np.ndarray, months: np.ndarray,
    rng: Callable[..., np.random.Generator], already_mql: bool = False,
) -> dict[str, np.ndarray]:
    """Everything about leads of a source that does not depend on the queue, given their arrivals; ``rng(stream)``
    gives each kind of randomness its own generator. Leads ``already_mql`` (waiting for a first touch) are MQLs,
    so their handling time and the rest of their path are drawn as an MQL's."""
    source = list(scenario.lead_sources.values())[index]
    n = len(time)
    arrival_month = np.searchsorted(months, time, side="right") - 1
    adoption = np.array([rng(Stream.ADOPTION, zlib.crc32(name.encode())).random(n) for name in scenario.automation])
    adoption = adoption.reshape(len(scenario.automation), n)
    used = levers_used(scenario, adoption, arrival_month)

    def uplift(step: str) -> np.ndarray | float:
        return conversion_multiplier(scenario, used, step)

    segment = list(scenario.segments).index(segment_name)
    funnel = scenario.funnel
    mql_rate = for_segment(funnel.mql_rate, segment_name) if source.mql_rate is None else source.mql_rate
    mql = np.ones(n, dtype=bool) if already_mql else rng(Stream.MQL).random(n) < mql_rate * uplift("mql")
    quality, score_noise = rng(Stream.QUALITY).random(n), rng(Stream.SCORE).standard_normal(n)
    # Durations are computed only for the leads that can need them: the inverse CDFs are most of the drawing cost.
    # An MQL can be touched; it can become an SQL, and so be discovered, only if its quality is below the SQL rate
    # (a slow response only lowers that); only those that would pass discovery have stages.
    handling = _ppf_where(scenario.roles[scenario.lead_role].handling_hours, rng(Stream.HANDLING).random(n), mql)
    can_qualify = mql & (quality < for_segment(funnel.sql_rate, segment_name) * uplift("sql"))
    opportunity_draws = rng(Stream.OPPORTUNITY).random((2, n))
    opportunity = opportunity_draws[0] < for_segment(funnel.opportunity_rate, segment_name) * uplift("opportunity")
    discovery = _ppf_where(for_segment(funnel.discovery_days, segment_name), opportunity_draws[1], can_qualify)
    stage_draws = rng(Stream.STAGES).random((2, len(funnel.stages), n))
    won, stage_days = stage_paths(
        scenario, segment_name, stage_draws, [uplift(stage.name) for stage in funnel.stages],
        needed=can_qualify & opportunity,
    )
    amount = scenario.segments[segment_name].deal_size.ppf(rng(Stream.DEAL_SIZE).random(n))
    return {
        "time": time,
        "segment": np.full(n, segment),
        "territory": territory,
        "source": np.full(n, index),
        "mql": mql,
        "quality": quality,
        "score_noise": score_noise,
        "handling_hours": handling,
        "opportunity": opportunity,
        "discovery_days": discovery,
        "won": won,
        "stage_days": stage_days,
        "amount": amount,
        "adoption": adoption,
        "origin": np.full(n, Origin.NEW, dtype=np.int8),
        "opened_at": np.full(n, np.nan),
        "snapshot_row": np.full(n, -1, dtype=np.int64),
    }


def _ppf_where(distribution: Distribution, uniforms: np.ndarray, needed: np.ndarray) -> np.ndarray:
    """The distribution's values for the uniforms where ``needed``, 0 elsewhere (never used there)."""
    values = np.zeros(len(uniforms))
    values[needed] = distribution.ppf(uniforms[needed])
    return values


def stage_paths(
    scenario: Scenario,
    segment: str,
    draws: np.ndarray,
    uplift: Sequence[np.ndarray | float] | None = None,
    needed: np.ndarray | None = None,
    first: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each opportunity is won, and the days from its creation to its close.

    An opportunity spends each stage's duration in turn and closes lost at the end of the first stage it fails,
    after that stage's time to close lost. ``draws[0]`` decides passing, ``draws[1]`` the durations (one row per
    stage, the same uniform whichever the outcome); ``uplift`` multiplies each stage's conversion (per stage: a number
    or one factor per opportunity); durations are computed only where ``needed``; the path starts at stage ``first``.
    """
    n = draws.shape[-1]
    alive = np.ones(n, dtype=bool)
    elapsed = np.zeros(n)
    for i, stage in enumerate(scenario.funnel.stages[first:], start=first):
        passes = draws[0, i] < for_segment(stage.conversion, segment) * (1.0 if uplift is None else uplift[i])
        timed = alive if needed is None else alive & needed
        elapsed += _ppf_where(for_segment(stage.duration_days, segment), draws[1, i], timed & passes)
        elapsed += _ppf_where(stage.lost_duration(segment), draws[1, i], timed & ~passes)
        alive &= passes
    return alive, elapsed
