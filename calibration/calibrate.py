"""Fitting a funnel from an audited export, and the calibration file that a scenario can take it from.

The funnel spine is lead → MQL → SQL → opportunity → won. A row enters it at the mapping's ``entry`` step; the
steps it is seen to reach are those with a mapped timestamp, and ``won`` from its outcome. Between two observed
steps lies a *span*: its conversion rate and its duration are fitted; steps the data do not observe are passed
with rate 1, so the spans' rates multiply to the observed conversion. Open rows are right-censored in the
durations and left out of the rates, and so are rows that entered a span too recently to have finished it
(``maturity_days``: lost deals close faster than won ones, so counting young cohorts would bias rates down).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from calibration.audit import Audit
from calibration.mapping import CalibrationError
from calibration.estimators import (
    CONFIDENCE,
    AmountFit,
    ArrivalModel,
    AttritionFit,
    BetaBinomialRate,
    DurationFit,
    ResponseDecayFit,
    weekday_weights,
)
from scenarios.json_values import json_ready
from scenarios.model import DAYS_PER_MONTH, ResponseDecay

STEPS = ("lead", "mql", "sql", "opportunity", "won")
STEP_TIMESTAMP = {"mql": "mql_at", "sql": "sql_at", "opportunity": "opportunity_at"}
#: The scenario's funnel rate that carries the conversion into each step.
RATE_KEY = {"mql": "mql_rate", "sql": "sql_rate", "opportunity": "opportunity_rate", "won": "stage"}
DEFAULT = "default"
#: Name of the single opportunity stage of a calibrated funnel (opportunity → won or lost).
STAGE_NAME = "close"
#: Ramp: productivity is measured against reps with at least this many months of tenure.
RAMPED_AFTER_MONTHS = 12
DAY = pd.Timedelta(days=1)


class Calibration:
    """Everything a CRM export says about a funnel, fitted; ``to_dict`` is the calibration file.

    Fitted attributes: ``spans_`` (per span: rates by segment and source, durations, maturity), ``kpis_``,
    ``cycle_`` (created → closed), ``arrivals_`` (per lead source), ``deal_sizes_`` (per segment),
    ``response_decay_`` and ``roster_`` (ramp and attrition by role), ``notes_``.
    """

    def __init__(self, confidence: float = CONFIDENCE, min_segment_events: int = 50, seed: int = 0):
        self.confidence = confidence
        self.min_segment_events = min_segment_events
        self.seed = seed

    def fit(self, audit: Audit, roster: pd.DataFrame | None = None) -> "Calibration":
        used, mapping = audit.used, audit.mapping
        if used.empty:
            reasons = ", ".join(f"{code} {n:,}" for code, n in audit.summary["by_reason"].items())
            raise CalibrationError(", ".join(audit.summary["files"]),
                                   [f"no usable rows: all {audit.summary['rows_in']:,} rows were quarantined ({reasons})"])
        self.audit_record_ = audit.to_dict()
        self.as_of_ = audit.as_of
        self.known_until_ = audit.known_until
        self.entry_ = mapping.entry
        self.dated_ = not mapping.undated
        self.lost_after_days_ = mapping.lost_after_days
        self.notes_: list[str] = []
        self.segments_ = sorted(used["segment"].unique())
        self.observed_steps_ = [self.entry_] + [
            step for step in STEPS[STEPS.index(self.entry_) + 1:-1] if mapping.columns.model_dump().get(STEP_TIMESTAMP[step])
        ] + ["won"]
        self.kpis_ = self._kpis(used)
        self.cycle_ = self._cycle(used)
        self.spans_ = {f"{a}→{b}": self._span(used, a, b) for a, b in zip(self.observed_steps_, self.observed_steps_[1:])}
        self.deal_sizes_ = self._deal_sizes(used, mapping.columns.amount is not None)
        self.arrivals_, self.weekday_weights_ = self._arrivals(used) if self.dated_ else ({}, None)
        self.response_decay_ = self._response_decay(used, mapping.columns.first_response_at is not None)
        self.roster_ = self._roster(used, roster) if roster is not None else None
        return self

    # ----- the pieces -----

    def _kpis(self, used: pd.DataFrame) -> dict:
        closed = used["outcome"].isin(["won", "lost"])
        won = used["outcome"].eq("won")
        rate = BetaBinomialRate(self.confidence).fit(pd.Series([won[closed].sum()]), pd.Series([closed.sum()]))
        return {
            "won_among_closed": {"rate": rate.pooled_, "interval": list(rate.pooled_interval_),
                                 "won": int(won.sum()), "closed": int(closed.sum()),
                                 "meaning": f"{self.entry_} → won, among rows won or lost"},
            "open_rows": int((~closed).sum()),
            "rows_used": len(used),
        }

    def _cycle(self, used: pd.DataFrame) -> dict | None:
        """created → closed over all rows (open ones censored at the as-of date)."""
        if self.dated_:
            closed = used["closed_at"].notna()
            durations = np.where(closed, (used["closed_at"] - used["created_at"]) / DAY, (self.known_until_ - used["created_at"]) / DAY)
            usable = closed | used["outcome"].eq("open")
            excluded = int((~usable).sum())
            if excluded:
                self.notes_.append(f"cycle: {excluded} rows lost without a close date are not in the created → closed fit")
            return self._duration(durations[usable], closed[usable].to_numpy(), "cycle")
        known = used["cycle_days"].notna()
        if not known.any():
            return None
        if (~known).any():
            self.notes_.append(f"cycle: {int((~known).sum())} rows without cycle_days are not in the cycle fit")
        return self._duration(used["cycle_days"][known].to_numpy(), np.ones(int(known.sum()), dtype=bool), "cycle")

    def _duration(self, durations: np.ndarray, observed: np.ndarray, label: str) -> dict | None:
        if observed.sum() < 2:
            self.notes_.append(f"{label}: fewer than 2 completed durations, not fitted")
            return None
        fit = DurationFit(confidence=self.confidence, seed=self.seed).fit(durations, observed)
        return {"fit": fit, **fit.to_dict()}

    def _reached(self, used: pd.DataFrame) -> dict[str, pd.Series]:
        """For each observed step, whether a row reached it (reaching a later step implies the earlier ones)."""
        reached = {"won": used["outcome"].eq("won")}
        later = reached["won"]
        for step in reversed(self.observed_steps_[:-1]):
            here = pd.Series(True, index=used.index) if step == self.entry_ else used[STEP_TIMESTAMP[step]].notna()
            reached[step] = here | later
            later = reached[step]
        return reached

    def _step_time(self, used: pd.DataFrame, step: str) -> pd.Series:
        return used["created_at"] if step == self.entry_ else (used["closed_at"] if step == "won" else used[STEP_TIMESTAMP[step]])

    def _span(self, used: pd.DataFrame, a: str, b: str) -> dict:
        reached = self._reached(used)
        entered, passed = reached[a], reached[b]
        lost_here = entered & ~passed & used["outcome"].eq("lost")
        span: dict = {"from": a, "to": b}
        resolved = passed | lost_here
        if self.dated_:
            start = self._step_time(used, a)
            end = self._step_time(used, b).where(passed, used["closed_at"].where(lost_here))
            open_here = entered & ~resolved
            durations = ((end.where(resolved, self.known_until_)) - start) / DAY
            usable = (resolved | open_here) & durations.notna() & (durations >= 0)
            excluded = int((entered & ~usable).sum())
            if excluded:
                span["excluded_from_duration"] = excluded
            span["duration"] = self._duration(durations[usable].to_numpy(), resolved[usable].to_numpy(), f"{a}→{b} duration")
            span["duration_by_segment"] = {
                segment: self._duration(durations[usable & (used["segment"] == segment)].to_numpy(),
                                        resolved[usable & (used["segment"] == segment)].to_numpy(), f"{a}→{b} duration, {segment}")
                for segment in self.segments_
                if (resolved & usable & (used["segment"] == segment)).sum() >= self.min_segment_events
            }
            maturity = self._maturity(span["duration"])
            age = (self.known_until_ - start) / DAY
            mature = age >= maturity
            span["maturity_days"] = maturity
        else:
            mature = pd.Series(True, index=used.index)
        trials = entered & resolved & mature
        span["young_rows_left_out"] = int((entered & resolved & ~mature).sum())
        span["open_rows"] = int((entered & ~resolved).sum())
        by_segment = self._rate(passed, trials, used["segment"])
        span["rate"] = by_segment.to_dict()
        span["rate_fit"] = by_segment
        if used["source"].nunique() > 1:
            span["rate_by_source"] = self._rate(passed, trials, used["source"]).to_dict()
        return span

    def _maturity(self, duration: dict | None) -> float:
        """Days a row must have been in a span for its outcome there to count: the span's P99 duration (Kaplan–
        Meier, else the longest seen); with ``lost_after_days``, exactly that, since only then is a row resolved."""
        if self.lost_after_days_:
            return float(self.lost_after_days_)
        if duration is None:
            return 0.0
        fit: DurationFit = duration["fit"]
        return float(fit.km_p99_ if fit.km_p99_ is not None else fit.longest_event_)

    def _rate(self, passed: pd.Series, trials: pd.Series, groups: pd.Series) -> BetaBinomialRate:
        frame = pd.DataFrame({"group": groups[trials], "passed": passed[trials].astype(int)})
        counts = frame.groupby("group")["passed"].agg(["sum", "count"])
        return BetaBinomialRate(self.confidence).fit(counts["sum"], counts["count"])

    def _deal_sizes(self, used: pd.DataFrame, has_amounts: bool) -> dict:
        if not has_amounts:
            self.notes_.append("deal sizes: no amount column; the scenario fragment gives deal_size fixed 0")
            return {}
        won = used["outcome"].eq("won")
        positive = won & (used["amount"] > 0)
        if (won & ~positive).any():
            self.notes_.append(f"deal sizes: {int((won & ~positive).sum())} won rows without a positive amount are not in the fit")
        sizes = {}
        for segment in self.segments_:
            amounts = used["amount"][positive & (used["segment"] == segment)].to_numpy()
            if len(amounts):
                fit = AmountFit(self.confidence, seed=self.seed).fit(amounts)
                sizes[segment] = fit.to_dict()
        return sizes

    def _arrivals(self, used: pd.DataFrame) -> tuple[dict, list[float]]:
        """Arrivals from the first to the last day a used row was created (the audit notes a gap before the as-of
        date), levelled at the month after the as-of date."""
        start, end = used["created_at"].min(), used["created_at"].max()
        reference = self.as_of_.to_period("M") + 1
        arrivals = {}
        source_segments = used.groupby("source")["segment"].nunique()
        for (segment, source), rows in used.groupby(["segment", "source"]):
            name = segment if self._single_source(used) else (source if source_segments[source] == 1 else f"{segment}_{source}")
            model = ArrivalModel(self.confidence).fit(rows["created_at"], start, end)
            volume, interval = model.monthly_volume(reference)
            arrivals[name] = {
                "segment": segment, "source": source, "monthly_volume": volume, "monthly_volume_interval": interval,
                "reference_month": str(reference), "trend": model.trend_, "trend_interval": model.trend_interval_,
                "seasonality": model.seasonality_, "seasonality_fitted": model.has_seasonality_,
                "n": model.n_, "months": model.months_, "monthly_counts": model.counts_.to_dict(), "model": model,
            }
        return arrivals, weekday_weights(used["created_at"], start, end)

    @staticmethod
    def _single_source(used: pd.DataFrame) -> bool:
        return used["source"].nunique() == 1

    def _response_decay(self, used: pd.DataFrame, has_response: bool) -> dict:
        default = ResponseDecay()
        documented = {"fitted": False, "half_life_hours": default.half_life_hours, "floor": default.floor,
                      "source": "scenario default (scenarios.model.ResponseDecay): milder than Oldroyd, McElheran & "
                                "Elkington, 'The Short Life of Online Sales Leads', Harvard Business Review, 2011"}
        if not has_response or "sql" not in self.observed_steps_:
            documented["why"] = "no first_response_at column" if not has_response else "no SQL step observed (sql_at)"
            return documented
        reached = self._reached(used)
        before_sql = self.observed_steps_[self.observed_steps_.index("sql") - 1]
        entered = reached[before_sql] & used["first_response_at"].notna()
        resolved = entered & (reached["sql"] | used["outcome"].eq("lost"))
        if resolved.sum() < 50 or reached["sql"][resolved].nunique() < 2:
            documented["why"] = "fewer than 50 touched rows with a known qualification, or no variation"
            return documented
        start = self._step_time(used, before_sql)
        hours = ((used["first_response_at"] - start) / pd.Timedelta(hours=1)).clip(lower=0)
        fit = ResponseDecayFit(self.confidence).fit(hours[resolved].to_numpy(), reached["sql"][resolved].to_numpy(),
                                                    used["segment"][resolved].to_numpy())
        return {**fit.to_dict(), "fit": fit}

    def _roster(self, used: pd.DataFrame, roster: pd.DataFrame) -> dict:
        """Attrition hazard and ramp by role; ramp from the monthly rows each rep owns, by tenure month.

        Attrition counts rep-months and leavers only inside the observation window, from the first day of the data
        to the end of the as-of day (undated exports: the roster's own first and last dates): a roster's start
        dates before the data reach back to years in which, for the reps still on staff, no departure could have
        been recorded, and counting them would dilute the hazard.
        """
        if self.dated_:
            window_start, window_end = used["created_at"].min().normalize(), self.known_until_
        else:
            window_start, window_end = roster["start_date"].min(), roster[["start_date", "end_date"]].max().max()
        result = {}
        for role, reps in roster.groupby("role"):
            begin = reps["start_date"].clip(lower=window_start)
            end = reps["end_date"].fillna(window_end).clip(upper=window_end)
            months = ((end - begin) / DAY / DAYS_PER_MONTH).clip(lower=0)
            left = reps["end_date"].between(window_start, window_end, inclusive="left")
            attrition = AttritionFit(self.confidence).fit(months.to_numpy(), left.to_numpy())
            result[str(role)] = {"attrition": {**attrition.to_dict(), "window": [str(window_start.date()), str(window_end.date())]},
                                 "ramp": self._ramp(used, reps), "reps": len(reps)}
        return result

    def _ramp(self, used: pd.DataFrame, reps: pd.DataFrame) -> dict:
        if not self.dated_:
            return {"fitted": False, "why": "undated export"}
        activity = used.groupby([used["owner"], used["created_at"].dt.to_period("M")]).size()
        first_month, last_month = used["created_at"].min().to_period("M") + 1, self.known_until_.to_period("M") - 1
        rows = []
        for rep in reps.itertuples():
            start_month = rep.start_date.to_period("M")
            begin = max(start_month + (0 if rep.start_date.day == 1 else 1), first_month)
            stop = min(rep.end_date.to_period("M") - 1 if pd.notna(rep.end_date) else last_month, last_month)
            for month in pd.period_range(begin, stop, freq="M") if begin <= stop else []:
                rows.append(((month - start_month).n, activity.get((str(rep.rep), month), 0)))
        if not rows:
            return {"fitted": False, "why": "no full rep-months inside the data's dates"}
        frame = pd.DataFrame(rows, columns=["tenure", "rows"])
        ramped = frame.loc[frame["tenure"] >= RAMPED_AFTER_MONTHS, "rows"]
        if len(ramped) < 3 or ramped.mean() <= 0:
            return {"fitted": False, "why": f"fewer than 3 rep-months past {RAMPED_AFTER_MONTHS} months of tenure"}
        by_tenure = frame[frame["tenure"] < RAMPED_AFTER_MONTHS].groupby("tenure")["rows"].agg(["mean", "count"])
        ratios = (by_tenure["mean"] / ramped.mean()).clip(lower=0.01, upper=1.0)
        ramp = []
        for tenure in range(RAMPED_AFTER_MONTHS):
            if tenure not in ratios.index or ratios[tenure] >= 0.95:
                break
            ramp.append(round(float(ratios[tenure]), 3))
        return {"fitted": True, "ramp": ramp, "ramped_rows_per_month": float(ramped.mean()),
                "rep_months_by_tenure": {int(t): int(c) for t, c in by_tenure["count"].items()}}

    # ----- outputs -----

    def scenario_fragment(self, with_response_decay: bool = True) -> dict:
        """The calibrated parts of a scenario (segments, lead sources, funnel), in the scenario format.

        Per-segment maps carry a ``default`` (the pooled value) so that they validate whatever other segments
        the base scenario names. With a significant fitted response decay, the SQL rates are those at immediate
        response and the decay comes along; ``with_response_decay=False`` gives the observed SQL rates and no decay
        instead, for a simulation that does not reproduce the organisation's response times.
        """
        funnel: dict = {}
        for rate_key in ("mql_rate", "sql_rate", "opportunity_rate"):
            funnel[rate_key] = {DEFAULT: 1.0}
        stage_conversion = {DEFAULT: 1.0}
        for span in self.spans_.values():
            target = RATE_KEY[span["to"]]
            rates = self._rate_map(span["rate_fit"])
            if target == "stage":
                stage_conversion = rates
            else:
                funnel[target] = rates
        decay = self.response_decay_
        if not with_response_decay:
            funnel["response_decay"] = None
        elif decay.get("fitted") and decay["significant"]:
            funnel["sql_rate"] = {DEFAULT: funnel["sql_rate"][DEFAULT],
                                  **{s: v["rate"] for s, v in decay["sql_rate_at_immediate_response"].items()}}
            funnel["response_decay"] = {"half_life_hours": decay["half_life_hours"], "floor": decay["floor"]}
        elif decay.get("fitted"):
            funnel["response_decay"] = None
        discovery = self.spans_.get("sql→opportunity", {}).get("duration")
        funnel["discovery_days"] = self._duration_map(self.spans_["sql→opportunity"]) if discovery else {DEFAULT: {"dist": "fixed", "value": 0.0}}
        closing = self.spans_[f"{self.observed_steps_[-2]}→won"]
        stage: dict = {"name": STAGE_NAME, "conversion": stage_conversion}
        durations = self._duration_map(closing) if closing.get("duration") else (
            {DEFAULT: self.cycle_["distribution"]} if self.cycle_ else {DEFAULT: {"dist": "fixed", "value": 0.0}})
        stage["duration_days"] = durations
        funnel["stages"] = [stage]
        fragment: dict = {
            "segments": {s: {"deal_size": self.deal_sizes_[s]["distribution"] if s in self.deal_sizes_ else {"dist": "fixed", "value": 0.0}}
                         for s in self.segments_},
            "funnel": funnel,
        }
        if self.arrivals_:
            fragment["lead_sources"] = {
                name: {"segment": a["segment"], "monthly_volume": a["monthly_volume"], "trend": a["trend"],
                       "seasonality": a["seasonality"], "weekday_weights": self.weekday_weights_}
                for name, a in self.arrivals_.items()
            }
        return fragment

    @staticmethod
    def _rate_map(fit: BetaBinomialRate) -> dict[str, float]:
        return {DEFAULT: fit.pooled_, **{str(g): float(r) for g, r in fit.by_group_["rate"].items()}}

    @staticmethod
    def _duration_map(span: dict) -> dict[str, dict]:
        return {DEFAULT: span["duration"]["distribution"],
                **{s: d["distribution"] for s, d in span.get("duration_by_segment", {}).items() if d}}

    def to_dict(self) -> dict:
        """The calibration file: every fitted value with its interval and sample size, the data's fingerprint,
        dates and audit, and the scenario fragment under ``scenario``."""
        audit = dict(self.audit_record_)
        return _plain({
            "data": audit.pop("data"),
            "audit": audit,
            "confidence": self.confidence,
            "kpis": self.kpis_,
            "cycle_days": self.cycle_,
            "spans": self.spans_,
            "deal_sizes": self.deal_sizes_,
            "arrivals": {"lead_sources": self.arrivals_, "weekday_weights": self.weekday_weights_},
            "response_decay": self.response_decay_,
            "roster": self.roster_,
            "notes": self.notes_,
            "scenario": self.scenario_fragment(),
        })


def _plain(value: object) -> object:
    """JSON-ready, with the fitted estimator objects left out."""
    return json_ready(value, drop=frozenset({"fit", "rate_fit", "model"}))


#: Scenario sections a calibration provides; a calibrated section replaces the base's.
CALIBRATED_SECTIONS = ("segments", "lead_sources")


def apply_calibration(base: dict, calibration: dict) -> dict:
    """A base scenario's raw mapping with a calibration's fragment applied: the calibrated segments and lead
    sources replace the base's (without calibrated lead sources, the calibrated segments join the base's), each funnel key the calibration gives replaces the base's, and what the data
    could not say (territories, roles, automation, other funnel keys) stays as the base has it."""
    fragment = calibration.get("scenario", calibration)
    scenario = copy.deepcopy(base)
    if "lead_sources" in fragment:
        for section in CALIBRATED_SECTIONS:
            scenario[section] = copy.deepcopy(fragment[section])
    else:
        scenario["segments"] = {**scenario.get("segments", {}), **copy.deepcopy(fragment.get("segments", {}))}
    funnel = dict(scenario.get("funnel", {}))
    funnel.update(copy.deepcopy(fragment.get("funnel", {})))
    scenario["funnel"] = funnel
    return scenario
