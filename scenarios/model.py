"""The scenario vocabulary: a validated, frozen description of a sales organisation and its market.

A scenario says everything the engine needs and nothing about how to run it (replications live elsewhere).
Validation happens here, once, with errors that name the key path; the engine then trusts the types.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from scenarios.base import Frozen
from scenarios.distributions import Distribution, Fixed
from scenarios.snapshot import Snapshot

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Share = Annotated[float, Field(ge=0.0, lt=1.0)]
T = TypeVar("T")

#: Leads per month are given for a month of average length, so that a constant volume is a constant daily rate.
DAYS_PER_MONTH = 365.25 / 12
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_KEY = "default"
ALL_TERRITORIES = "all"
_MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: The largest closing-pace spread a scenario may give: one month in twenty then runs over 50 times faster or slower.
MAX_MONTH_SD = 2.0


class SegmentSpec(Frozen):
    """A market segment (SMB, mid-market, enterprise…): what its deals are worth."""

    deal_size: Distribution = Field(description="the value of a deal won")


class TerritorySpec(Frozen):
    """A territory: its share of every lead source's volume (relative weight, normalised over territories)."""

    lead_share: PositiveFloat = Field(default=1.0, description="relative share of every lead source's volume")


class LeadSource(Frozen):
    """Leads of one segment: a non-homogeneous Poisson process with trend and seasonality.

    The daily rate in month m (0-based from the scenario start) is
    ``monthly_volume / DAYS_PER_MONTH * (1 + trend) ** m * seasonality[calendar month] * weekday weight``,
    with weekday weights normalised to average 1, split over territories by their weights. An outbound source
    (``produced_by`` a role) is the fruit of that role's prospecting: its ``monthly_volume`` is per fully ramped
    rep, and its leads arise in each territory in proportion to the ramped reps there, so hiring prospectors
    brings leads.
    """

    segment: str = Field(description="the segment its leads belong to")
    monthly_volume: NonNegativeFloat = Field(
        description="leads in a month of average length (30.44 days), so a constant volume is a constant daily rate; "
        "for an outbound source, per fully ramped rep of the producing role"
    )
    trend: float = Field(default=0.0, gt=-1.0, description="monthly growth rate, compounding")
    seasonality: list[PositiveFloat] = Field(
        default_factory=lambda: [1.0] * 12, min_length=12, max_length=12, description="multipliers by calendar month, January first"
    )
    weekday_weights: list[NonNegativeFloat] = Field(
        default_factory=lambda: [1.0] * 7, min_length=7, max_length=7, description="relative weights of the weekdays, Monday first"
    )
    territories: dict[str, PositiveFloat] | None = Field(
        default=None, description="territory weights for this source; default: the territories' lead_share"
    )
    produced_by: str | None = Field(default=None, description="role whose reps prospect these leads (outbound)")
    mql_rate: Probability | None = Field(default=None, description="overrides funnel.mql_rate for this source")

    @model_validator(mode="after")
    def _outbound_follows_reps(self) -> "LeadSource":
        if self.produced_by is not None and self.territories is not None:
            raise ValueError("territories: an outbound source (produced_by) arises where its reps are")
        return self

    @field_validator("weekday_weights")
    @classmethod
    def _some_weekday(cls, weights: list[float]) -> list[float]:
        if sum(weights) <= 0:
            raise ValueError("at least one weekday weight must be positive")
        return weights


class Stage(Frozen):
    """An opportunity stage worked by the opportunity-owning role: how many pass it and how long it takes.

    Passing and failing are competing outcomes with their own timing: ``duration_days`` is the time to pass (to
    win, at the last stage), ``lost_duration_days`` the time to close lost here for those who fail it (by default
    the same distribution, so that the outcome does not depend on the time taken).
    """

    name: str = Field(description="the stage's name (a conversion uplift can target it)")
    conversion: dict[str, Probability] = Field(
        description="per segment: the share that passes; an opportunity closes lost at the first stage it fails, won after the last"
    )
    duration_days: dict[str, Distribution] = Field(description="per segment: days to pass the stage")
    lost_duration_days: dict[str, Distribution] | None = Field(
        default=None, description="per segment: days to close lost here for those who fail it; default: duration_days"
    )

    def lost_duration(self, segment: str) -> Distribution:
        """The time to close lost at this stage, for a deal of the segment that fails it."""
        return for_segment(self.lost_duration_days or self.duration_days, segment)


class ResponseDecay(Frozen):
    """How the SQL conversion falls with the hours a lead waited for its first touch.

    ``multiplier(h) = floor + (1 - floor) * 0.5 ** (h / half_life_hours)``. The default (half-life 24 h, floor 0.4)
    is deliberately milder than the 2011 Harvard Business Review lead-response study (Oldroyd, McElheran and
    Elkington, "The Short Life of Online Sales Leads"), which found leads contacted within an hour about seven times
    as likely to be qualified as those contacted later; calibrate it where response times are recorded.
    """

    half_life_hours: PositiveFloat = Field(default=24.0, description="hours of waiting that halve the SQL rate's part above the floor")
    floor: Probability = Field(default=0.4, description="the share of the SQL rate kept however long the wait")

    def multiplier(self, hours):  # noqa: ANN001, ANN201 - works on floats and numpy arrays alike
        return self.floor + (1.0 - self.floor) * 0.5 ** (hours / self.half_life_hours)


class ClosingPace(Frozen):
    """How fast open deals move, month by month: every open deal's clock runs at one pace per calendar month,
    drawn per replication (lognormal with mean 1, independent across months). A month at pace 1.3 closes about 30%
    more of the deals due; the outcome of a deal does not change, only when it comes. It holds what history shows
    beyond chance (a busy quarter, a holiday month, a team change) so that a forecast's bands do too; calibration fits
    ``month_sd`` from the spread of each month's closes around what the fitted times expected."""

    month_sd: Annotated[float, Field(ge=0.0, le=MAX_MONTH_SD)] = Field(description="standard deviation of a month's log pace")


class Funnel(Frozen):
    """The funnel spine: lead → MQL → SQL (SDR first touch) → opportunity (AE discovery) → stages → won/lost.

    Every probability map is keyed by segment; the key ``default`` stands for segments not named.
    """

    mql_rate: dict[str, Probability] = Field(description="per segment: lead → MQL (marketing qualification, no rep involved)")
    sql_rate: dict[str, Probability] = Field(description="MQL → SQL at an immediate first touch")
    opportunity_rate: dict[str, Probability] = Field(
        default_factory=lambda: {DEFAULT_KEY: 1.0}, description="per segment: accepted SQL → opportunity"
    )
    discovery_days: dict[str, Distribution] = Field(
        default_factory=lambda: {DEFAULT_KEY: Fixed(dist="fixed", value=0.0)},
        description="per segment: the discovery an accepted SQL goes through before it is an opportunity or not",
    )
    stages: list[Stage] = Field(default_factory=list, description="the opportunity stages, in order")
    response_decay: ResponseDecay | None = Field(
        default_factory=ResponseDecay, description="how the SQL rate falls with the wait for a first touch; null for no decay"
    )
    closing_pace: ClosingPace | None = Field(
        default=None, description="month-to-month variation in how fast open deals close; null: every month at pace 1"
    )


class WorkingHours(Frozen):
    """When a role works: the weekdays and the hours of the day (local clock, 0–24)."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1, description="the working days"
    )
    start: Annotated[float, Field(ge=0.0, lt=24.0)] = Field(default=9.0, description="hour the working day starts")
    end: Annotated[float, Field(gt=0.0, le=24.0)] = Field(
        default=17.0, description="hour it ends; all seven days from 0 to 24 for around the clock"
    )

    @model_validator(mode="after")
    def _ordered(self) -> "WorkingHours":
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    @property
    def around_the_clock(self) -> bool:
        return len(set(self.days)) == 7 and self.start == 0.0 and self.end == 24.0



class Role(Frozen):
    """A kind of rep (SDR, AE, manager…), its people over time and its cost.

    ``works`` says what the role's reps do: ``leads`` (first touch and qualification of MQLs, the SDR),
    ``opportunities`` (owns opportunities up to ``open_opportunity_limit`` each, the AE) or ``none``
    (overhead such as managers: headcount and cost only). A role with ``span_of_control`` has its
    headcount derived each month as ceil(headcount of the roles it ``manages`` / span).
    """

    works: Literal["leads", "opportunities", "none"] = Field(
        description="leads: first touch of MQLs (the SDR; exactly one role); opportunities: owns them (the AE; at most "
        "one role); none: headcount and cost only (managers)"
    )
    headcount: dict[str, NonNegativeInt] = Field(
        default_factory=dict, description="reps per territory at the start, taken as fully ramped"
    )
    working_hours: WorkingHours = Field(default_factory=WorkingHours)
    handling_hours: Distribution | None = Field(default=None, description="rep hours per lead (works: leads)")
    open_opportunity_limit: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="opportunities a rep holds at once at full productivity (works: opportunities)"
    )
    admin_share: Share = Field(default=0.0, description="share of working time lost to admin")
    prospecting_share: Share = Field(default=0.0, description="share of working time spent prospecting")
    ramp: list[Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        default_factory=list, description="productivity by tenure month; 1 after the list ends"
    )
    attrition_hazard: list[Probability] = Field(
        default_factory=lambda: [0.0], min_length=1,
        description="monthly probability of leaving by tenure month; the last value holds thereafter",
    )
    hiring_lag_months: NonNegativeInt = Field(default=0, description="months from requisition to start")
    hiring_plan: dict[str, dict[str, NonNegativeInt]] = Field(
        default_factory=dict,
        description="requisitions opened by month (YYYY-MM): a count spread over territories by lead share, "
        "or a map territory → count; reps start hiring_lag_months later",
    )
    backfill: bool = Field(default=False, description="replace leavers; the replacement starts on the first of a month")
    backfill_lag_months: NonNegativeInt = Field(
        default=2, description="months from the one after a rep left to the replacement's start (left in March, lag 2: June 1)"
    )
    max_hires_per_month: NonNegativeInt | None = Field(default=None, description="recruiting capacity (planning)")
    min_headcount: NonNegativeInt = Field(default=0, description="floor on headcount (planning)")
    max_headcount: NonNegativeInt | None = Field(default=None, description="ceiling on headcount (planning)")
    salary_monthly: NonNegativeFloat = Field(default=0.0, description="cost per rep-month (pro rata)")
    hiring_cost: NonNegativeFloat = Field(default=0.0, description="cost per hire")
    manages: list[str] = Field(default_factory=list, description="the roles whose headcount this role's is derived from")
    span_of_control: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="reps per manager: headcount = ceil(managed headcount / span)"
    )

    @field_validator("hiring_plan", mode="before")
    @classmethod
    def _counts_spread_over_territories(cls, plan: object) -> object:
        """Accept ``2027-03: 4`` as shorthand for four hires spread over all territories."""
        if not isinstance(plan, dict):
            return plan
        return {month: {ALL_TERRITORIES: hires} if isinstance(hires, int) else hires for month, hires in plan.items()}

    @model_validator(mode="after")
    def _consistent(self) -> "Role":
        if self.works == "leads" and self.handling_hours is None:
            raise ValueError("handling_hours: required for a role that works leads")
        if self.works == "opportunities" and self.open_opportunity_limit is None:
            raise ValueError("open_opportunity_limit: required for a role that works opportunities")
        if (self.span_of_control is None) != (not self.manages):
            raise ValueError("manages and span_of_control go together")
        if self.admin_share + self.prospecting_share >= 1.0:
            raise ValueError("admin_share + prospecting_share must leave some working time (below 1)")
        if self.span_of_control is not None and (self.headcount or self.hiring_plan):
            raise ValueError("a role with span_of_control has a derived headcount: drop headcount and hiring_plan")
        return self

    def productivity(self, tenure_month: int) -> float:
        """Share of full productivity in the given month of tenure (0 = first month)."""
        return self.ramp[tenure_month] if tenure_month < len(self.ramp) else 1.0

    def hazard(self, tenure_month: int) -> float:
        return self.attrition_hazard[min(tenure_month, len(self.attrition_hazard) - 1)]


class _Lever(Frozen):
    start_month: str = Field(description="the month the tool starts, YYYY-MM")
    one_time_cost: NonNegativeFloat = Field(default=0.0, description="paid in the start month")
    monthly_cost: NonNegativeFloat = Field(default=0.0, description="paid every month from the start")
    monthly_cost_per_rep: NonNegativeFloat = Field(default=0.0, description="per rep on staff, times the adoption")
    adoption: list[Probability] = Field(
        default_factory=lambda: [1.0], min_length=1,
        description="share of work done with the tool by month since start; the last value holds",
    )

    def adoption_at(self, months_since_start: int) -> float:
        if months_since_start < 0:
            return 0.0
        return self.adoption[min(months_since_start, len(self.adoption) - 1)]


class LeadScoring(_Lever):
    """Scores MQLs: SDRs work the best-scored first and the lowest-scored ``filter_share`` go to nurture."""

    kind: Literal["lead_scoring"]
    accuracy: Probability = Field(description="correlation between the score and the lead's true quality")
    filter_share: Share = Field(default=0.0, description="share of the lowest-scored MQLs sent to nurture")


class FollowUp(_Lever):
    """Automated first touch and routing: the lead feels a shorter wait and SDRs spend less time per lead."""

    kind: Literal["follow_up"]
    response_reduction: Probability = Field(default=0.0, description="share of the wait the lead no longer feels")
    handling_reduction: Share = Field(default=0.0, description="share of SDR time per lead saved")


class CrmAutomation(_Lever):
    """CRM data automation: frees a share of the admin time of every rep."""

    kind: Literal["crm_automation"]
    admin_time_freed: Probability = Field(description="share of every role's admin time given back to selling")


#: Funnel steps of the spine that a conversion uplift can target; opportunity stages are named by their ``name``.
SPINE_STEPS = ("mql", "sql", "opportunity")


class ConversionUplift(_Lever):
    """Raises the conversion at one funnel step (``mql``, ``sql``, ``opportunity`` or a named opportunity stage) by a
    relative ``uplift`` for the leads the tool is used on: sales engagement, proposal or forecasting tools.

    The lead's own uniform draw is compared against the raised probability (capped at 1), so a lead that converts
    without the tool converts with it: scenarios compared with the same seed share their luck.
    """

    kind: Literal["conversion_uplift"]
    step: str = Field(description="mql, sql, opportunity, or the name of an opportunity stage")
    uplift: Annotated[float, Field(gt=0.0, le=1.0)] = Field(description="relative increase: 0.1 = 10% more convert")


AutomationLever = Annotated[Union[LeadScoring, FollowUp, CrmAutomation, ConversionUplift], Field(discriminator="kind")]


class InitialState(Frozen):
    """Where the organisation stands on the first day.

    With ``pipeline`` (a snapshot CSV, ``scenarios.snapshot``), the open deals, waiting leads and reps it lists:
    deals run on from their stage and age, their outcome and remaining time drawn given the age already survived.
    Without it, the simulation starts in steady state: the organisation as it stands at the start (headcount,
    funnel, no hiring, no attrition, no tools yet) is simulated for ``warm_up_months`` before the start and that
    period discarded, its open work carried in. ``warm_up_months`` left out: long enough that 99% of
    opportunities accepted at its beginning have closed by its end (see ``engine.initial``); 0: start empty.
    """

    pipeline: str | None = Field(default=None, description="snapshot CSV of open deals, waiting leads and reps")
    pipeline_sha256: str | None = Field(default=None, description="the snapshot's content hash, set when it is read")
    warm_up_months: Annotated[int, Field(ge=0, le=60)] | None = Field(
        default=None, description="months simulated before the start and discarded (no pipeline); default: automatic"
    )
    snapshot: SkipJsonSchema[Snapshot | None] = Field(default=None, exclude=True, description="the pipeline file's rows, once read")


def _month_key_error(key: str) -> str | None:
    return None if _MONTH_PATTERN.match(key) else f"expected a month as YYYY-MM, got {key!r}"


class Scenario(Frozen):
    """A whole sales organisation over a planning horizon."""

    name: str = Field(description="label")
    description: str = Field(default="", description="label")
    start: date = Field(description="first day of the first month")
    horizon_months: Annotated[int, Field(ge=1, le=120)] = Field(default=18, description="months simulated")
    seed: NonNegativeInt = Field(default=0, description="default seed; the same scenario and seed give identical results")
    segments: dict[str, SegmentSpec] = Field(min_length=1)
    territories: dict[str, TerritorySpec] = Field(min_length=1)
    lead_sources: dict[str, LeadSource] = Field(min_length=1)
    funnel: Funnel
    roles: dict[str, Role] = Field(min_length=1)
    automation: dict[str, AutomationLever] = Field(
        default_factory=dict, description="automation tools by name, each of one kind below, with its start, costs and adoption"
    )
    initial_state: InitialState = Field(
        default_factory=InitialState, description="where the organisation stands on the first day: a snapshot file, or a warm-up"
    )
    parameter_draws: list[dict[str, Any]] = Field(
        default_factory=list,
        description="joint draws of fitted parameters, each a map of --set key paths to values (a calibration's "
        "parameter_draws come with it): replication r takes draw r mod their number",
    )
    parameter_uncertainty: bool = Field(
        default=True,
        description="replications take their parameters from parameter_draws, so that P10–P90 holds estimation "
        "error too; false: every replication runs on the fitted values",
    )

    @field_validator("start")
    @classmethod
    def _first_of_month(cls, start: date) -> date:
        if start.day != 1:
            raise ValueError(f"expected the first day of a month, got {start.isoformat()}")
        return start

    # ----- cross-field checks: each error names its key path -----

    @model_validator(mode="after")
    def _references_resolve(self) -> "Scenario":
        errors: list[str] = []
        segments, territories = set(self.segments), set(self.territories)
        for name, source in self.lead_sources.items():
            if source.segment not in segments:
                errors.append(f"lead_sources.{name}.segment: unknown segment {source.segment!r}; expected one of {sorted(segments)}")
            producer = self.roles.get(source.produced_by) if source.produced_by else None
            if source.produced_by and (producer is None or producer.span_of_control is not None):
                errors.append(f"lead_sources.{name}.produced_by: unknown or derived role {source.produced_by!r}; expected one of {sorted(self.roles)}")
            for territory in source.territories or {}:
                if territory not in territories:
                    errors.append(f"lead_sources.{name}.territories.{territory}: unknown territory; expected one of {sorted(territories)}")
        funnel = self.funnel
        per_segment = {
            "funnel.mql_rate": funnel.mql_rate,
            "funnel.sql_rate": funnel.sql_rate,
            "funnel.opportunity_rate": funnel.opportunity_rate,
            "funnel.discovery_days": funnel.discovery_days,
        }
        for i, stage in enumerate(funnel.stages):
            per_segment[f"funnel.stages.{i}.conversion"] = stage.conversion
            per_segment[f"funnel.stages.{i}.duration_days"] = stage.duration_days
            if stage.lost_duration_days is not None:
                per_segment[f"funnel.stages.{i}.lost_duration_days"] = stage.lost_duration_days
        for path, mapping in per_segment.items():
            errors.extend(_check_per_segment(path, mapping, segments))
        errors.extend(self._check_roles(territories))
        errors.extend(self._check_initial_state(segments, territories))
        steps = self.funnel_steps
        for name, lever in self.automation.items():
            errors.extend(self._check_month(f"automation.{name}.start_month", lever.start_month))
            if isinstance(lever, ConversionUplift) and lever.step not in steps:
                errors.append(f"automation.{name}.step: unknown funnel step {lever.step!r}; expected one of {list(steps)}")
        if errors:
            raise ValueError("\n".join(errors))
        return self

    def _check_roles(self, territories: set[str]) -> list[str]:
        errors: list[str] = []
        kinds = [role.works for role in self.roles.values()]
        if kinds.count("leads") != 1:
            errors.append(f"roles: expected exactly one role with works: leads, found {kinds.count('leads')}")
        if kinds.count("opportunities") > 1:
            errors.append("roles: expected at most one role with works: opportunities")
        if "opportunities" not in kinds and any(p > 0 for p in self.funnel.sql_rate.values()):
            errors.append("roles: funnel.sql_rate is positive, so a role with works: opportunities is needed")
        for name, role in self.roles.items():
            for territory in role.headcount:
                if territory not in territories:
                    errors.append(f"roles.{name}.headcount.{territory}: unknown territory; expected one of {sorted(territories)}")
            for month, by_territory in role.hiring_plan.items():
                errors.extend(self._check_month(f"roles.{name}.hiring_plan.{month}", month))
                for territory in by_territory:
                    if territory != ALL_TERRITORIES and territory not in territories:
                        errors.append(f"roles.{name}.hiring_plan.{month}.{territory}: unknown territory; expected one of {sorted(territories)}")
            for managed in role.manages:
                if managed not in self.roles or managed == name:
                    errors.append(f"roles.{name}.manages: unknown role {managed!r}; expected one of {sorted(set(self.roles) - {name})}")
        return errors

    def _check_initial_state(self, segments: set[str], territories: set[str]) -> list[str]:
        state = self.initial_state
        if state.pipeline is None:
            return []
        if state.snapshot is None:
            return ["initial_state.pipeline: the snapshot file was not read (load scenarios with scenarios.load_scenario)"]
        stages = {stage.name for stage in self.funnel.stages}
        staffed = {name for name, role in self.roles.items() if role.span_of_control is None}
        return state.snapshot.reference_problems(segments, territories, stages, staffed)

    def _check_month(self, path: str, key: str) -> list[str]:
        problem = _month_key_error(key)
        if problem:
            return [f"{path}: {problem}"]
        index = self.month_index(key)
        if not 0 <= index < self.horizon_months:
            return [f"{path}: month outside the horizon {self.month_label(0)}..{self.month_label(self.horizon_months - 1)}"]
        return []

    # ----- calendar helpers -----

    def month_index(self, key: str) -> int:
        """0-based month of the horizon for a YYYY-MM key."""
        year, month = int(key[:4]), int(key[5:7])
        return (year - self.start.year) * 12 + (month - self.start.month)

    def month_label(self, index: int) -> str:
        """The YYYY-MM key of a 0-based horizon month."""
        total = self.start.year * 12 + self.start.month - 1 + index
        return f"{total // 12:04d}-{total % 12 + 1:02d}"

    def requisitions(self, role_name: str) -> list[tuple[int, str, int]]:
        """A role's hiring plan as (horizon month, territory, count), shorthand counts spread by lead share."""
        weights = {t: spec.lead_share for t, spec in self.territories.items()}
        rows = []
        for key in sorted(self.roles[role_name].hiring_plan):
            by_territory = dict(self.roles[role_name].hiring_plan[key])
            for territory, hires in spread(by_territory.pop(ALL_TERRITORIES, 0), weights).items():
                by_territory[territory] = by_territory.get(territory, 0) + hires
            rows.extend((self.month_index(key), t, by_territory[t]) for t in self.territories if by_territory.get(t))
        return rows

    @property
    def funnel_steps(self) -> tuple[str, ...]:
        """The steps a conversion uplift can target: the spine's, then the opportunity stages by name."""
        return SPINE_STEPS + tuple(stage.name for stage in self.funnel.stages)

    @property
    def lead_role(self) -> str:
        return next(name for name, role in self.roles.items() if role.works == "leads")

    @property
    def opportunity_role(self) -> str | None:
        return next((name for name, role in self.roles.items() if role.works == "opportunities"), None)


def for_segment(mapping: dict[str, T], segment: str) -> T:
    """The value a per-segment map gives a segment, falling back on its ``default`` key."""
    return mapping[segment] if segment in mapping else mapping[DEFAULT_KEY]


def _check_per_segment(path: str, mapping: dict, segments: set[str]) -> list[str]:
    errors = [
        f"{path}.{key}: unknown segment; expected one of {sorted(segments)} or {DEFAULT_KEY!r}"
        for key in mapping
        if key != DEFAULT_KEY and key not in segments
    ]
    if DEFAULT_KEY not in mapping:
        missing = sorted(segments - set(mapping))
        if missing:
            errors.append(f"{path}: no value for segment(s) {missing}; give them or a {DEFAULT_KEY!r} key")
    return errors


def spread(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split a whole number over keys in proportion to weights (largest remainder, ties by key order)."""
    norm = sum(weights.values())
    exact = {key: total * w / norm for key, w in weights.items()}
    counts = {key: math.floor(x) for key, x in exact.items()}
    leftover = total - sum(counts.values())
    for key in sorted(exact, key=lambda k: counts[k] - exact[k])[:leftover]:
        counts[key] += 1
    return counts
