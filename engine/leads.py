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
from typing import Sequence

import numpy as np

from engine.automation import conversion_multiplier, levers_used
from engine.people import Rep, productivity
from engine.streams import Stream, generator
from scenarios.distributions import Distribution
from scenarios.model import DAYS_PER_MONTH, Scenario, for_segment


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

    def __len__(self) -> int:
        return len(self.time)


def draw_leads(scenario: Scenario, months: np.ndarray, reps: list[Rep], seed: int, replication: int) -> Leads:
    """All leads of the horizon for one replication (``reps``, the roster, places outbound leads)."""
    parts = [
        _draw_source(scenario, index, _daily_rates(scenario, index, months, reps), months, seed, replication)
        for index in range(len(scenario.lead_sources))
    ]
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
    source = list(scenario.lead_sources.values())[index]

    def rng(stream: Stream, *subkeys: int) -> np.random.Generator:
        return generator(seed, replication, stream, index, *subkeys)

    arrivals = rng(Stream.ARRIVALS)
    counts = arrivals.poisson(rates).ravel()  # day-major: (day, territory) cells in order
    n = int(counts.sum())
    cells = np.repeat(np.arange(counts.size), counts)
    time = (cells // rates.shape[1]).astype(float) + arrivals.random(n)
    territory = cells % rates.shape[1]
    arrival_month = np.searchsorted(months, time, side="right") - 1
    adoption = np.array([rng(Stream.ADOPTION, zlib.crc32(name.encode())).random(n) for name in scenario.automation])
    adoption = adoption.reshape(len(scenario.automation), n)
    used = levers_used(scenario, adoption, arrival_month)

    def uplift(step: str) -> np.ndarray | float:
        return conversion_multiplier(scenario, used, step)

    segment = list(scenario.segments).index(source.segment)
    funnel = scenario.funnel
    mql_rate = for_segment(funnel.mql_rate, source.segment) if source.mql_rate is None else source.mql_rate
    mql = rng(Stream.MQL).random(n) < mql_rate * uplift("mql")
    quality, score_noise = rng(Stream.QUALITY).random(n), rng(Stream.SCORE).standard_normal(n)
    # Durations are computed only for the leads that can need them: the inverse CDFs are most of the drawing cost.
    # An MQL can be touched; it can become an SQL, and so be discovered, only if its quality is below the SQL rate
    # (a slow response only lowers that); only those that would pass discovery have stages.
    handling = _ppf_where(scenario.roles[scenario.lead_role].handling_hours, rng(Stream.HANDLING).random(n), mql)
    can_qualify = mql & (quality < for_segment(funnel.sql_rate, source.segment) * uplift("sql"))
    opportunity_draws = rng(Stream.OPPORTUNITY).random((2, n))
    opportunity = opportunity_draws[0] < for_segment(funnel.opportunity_rate, source.segment) * uplift("opportunity")
    discovery = _ppf_where(for_segment(funnel.discovery_days, source.segment), opportunity_draws[1], can_qualify)
    stage_draws = rng(Stream.STAGES).random((2, len(funnel.stages), n))
    won, stage_days = stage_paths(
        scenario, source.segment, stage_draws, [uplift(stage.name) for stage in funnel.stages],
        needed=can_qualify & opportunity,
    )
    amount = scenario.segments[source.segment].deal_size.ppf(rng(Stream.DEAL_SIZE).random(n))
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
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each opportunity is won, and the days from its creation to its close.

    An opportunity spends each stage's duration in turn and closes lost at the end of the first stage it fails,
    after that stage's time to close lost. ``draws[0]`` decides passing, ``draws[1]`` the durations (one row per
    stage, the same uniform whichever the outcome); ``uplift`` multiplies each stage's conversion (per stage: a number
    or one factor per opportunity); durations are computed only where ``needed``.
    """
    n = draws.shape[-1]
    alive = np.ones(n, dtype=bool)
    elapsed = np.zeros(n)
    for i, stage in enumerate(scenario.funnel.stages):
        passes = draws[0, i] < for_segment(stage.conversion, segment) * (1.0 if uplift is None else uplift[i])
        timed = alive if needed is None else alive & needed
        elapsed += _ppf_where(for_segment(stage.duration_days, segment), draws[1, i], timed & passes)
        elapsed += _ppf_where(stage.lost_duration(segment), draws[1, i], timed & ~passes)
        alive &= passes
    return alive, elapsed
