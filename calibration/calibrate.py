"""Fitting a funnel from an audited export, and the calibration file that a scenario can take it from.

The funnel spine is lead → MQL → SQL → opportunity → won. A row enters it at the mapping's ``entry`` step; the
steps it is seen to reach are those with a mapped timestamp, and ``won`` from its outcome. Between two observed
steps lies a *span*: its conversion rate and its duration are fitted; steps the data do not observe are passed
with rate 1, so the spans' rates multiply to the observed conversion. In each span a row passes, fails (is lost
there) or is still open: competing outcomes fitted from every row, open ones right-censored at their age
(``OutcomeFit``: Aalen–Johansen cumulative incidences, per-outcome times, the mixture cure model for exports
without recorded losses). Groups (segments, sources) are partially pooled: rates by a hierarchical model whose
strength is estimated, times by the pooled shapes shifted to a small group's own data (said in ``notes``).
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from scipy import stats

from calibration.audit import UNSPECIFIED, Audit, plural
from calibration.mapping import CalibrationError
from calibration.pace import ClosingPaceFit
from calibration.estimators import (
    CONFIDENCE,
    LOST,
    OPEN,
    WON,
    AmountFit,
    ArrivalModel,
    AttritionFit,
    FAMILIES,
    DurationFit,
    OutcomeFit,
    PooledRates,
    ResponseDecayFit,
    weekday_weights,
)
from scenarios.json_values import json_ready
from scenarios.model import DAYS_PER_MONTH, ResponseDecay
from scenarios.snapshot import COLUMNS as SNAPSHOT_COLUMNS

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
#: Steps whose span's times the scenario takes (discovery, the closing stage): all families are tried for them.
TIMED_STEPS = ("opportunity", "won")
_VERB = {"won": "win", "lost": "lose"}
_FIXED_ZERO = {DEFAULT: {"dist": "fixed", "value": 0.0}}
#: Parameter draws written to the calibration file (replication r of a simulation uses draw r mod their number).
PARAMETER_DRAWS = 200


class Calibration:
    """Everything a CRM export says about a funnel, fitted; ``to_dict`` is the calibration file.

    Fitted attributes: ``spans_`` (per span: outcome fits pooled, by segment and by source, partially pooled
    rates), ``kpis_``, ``cycle_`` (created → closed), ``arrivals_`` (per lead source), ``deal_sizes_`` (per
    segment), ``response_decay_`` and ``roster_`` (ramp and attrition by role), ``fits_`` (rows each fit used and
    could not use), ``notes_``.
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
        self._mapped = mapping.mapped()
        self.notes_: list[str] = []
        self.resolution_days_ = _resolution(used)
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
        self.fits_ = self._fits(used)
        return self

    def _fits(self, used: pd.DataFrame) -> dict:
        """Per fit, the rows it used and those it could not (a row quarantined for one field only is left out of
        the fits that need that field, and only of them)."""
        fits = {f"outcomes {name}": span["rows"] for name, span in self.spans_.items()}
        won = used["outcome"].eq("won")
        if "amount" in self._mapped:
            sizes_used = won & (used["amount"] > 0)
            fits["deal sizes"] = {"entered": int(won.sum()), "used": int(sizes_used.sum()), "not_usable": int((won & ~sizes_used).sum()),
                                  "why": {k: int(v) for k, v in used.loc[won & ~sizes_used, "amount_issue"].fillna("no_amount").value_counts().items()}}
        return fits

    # ----- the pieces -----

    def _kpis(self, used: pd.DataFrame) -> dict:
        closed = used["outcome"].isin(["won", "lost"])
        won = used["outcome"].eq("won")
        k, n = int(won[closed].sum()), int(closed.sum())
        tail = (1 - self.confidence) / 2
        interval = [float(x) for x in stats.beta.ppf([tail, 1 - tail], k + 0.5, n - k + 0.5)]  # Jeffreys
        return {
            "won_among_closed": {"rate": k / n if n else float("nan"), "interval": interval,
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
                self.notes_.append(f"cycle: {plural(excluded, 'row')} lost without a close date are not in the created → closed fit")
            return self._duration(durations[usable], closed[usable].to_numpy(), "cycle")
        known = used["cycle_days"].notna()
        if not known.any():
            return None
        if (~known).any():
            self.notes_.append(f"cycle: {plural(int((~known).sum()), 'row')} without cycle_days are not in the cycle fit")
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

    def step_time(self, used: pd.DataFrame, step: str) -> pd.Series:
        """When each row reached a funnel step: its creation for the entry step, its close for ``won``."""
        return used["created_at"] if step == self.entry_ else (used["closed_at"] if step == "won" else used[STEP_TIMESTAMP[step]])

    def _span(self, used: pd.DataFrame, a: str, b: str) -> dict:
        """Rows that entered step ``a``: passed to ``b`` (won), lost there, or open, and after how many days; rates
        and times per segment and per source, pooled as the class docstring says."""
        reached = self._reached(used)
        entered, passed = reached[a], reached[b]
        lost_here = entered & ~passed & used["outcome"].eq("lost") & ~used["lost_undated"]
        outcome = pd.Series(np.select([passed, lost_here], [WON, LOST], OPEN), index=used.index)
        span: dict = {"from": a, "to": b}
        if self.dated_:
            start = self.step_time(used, a)
            end = self.step_time(used, b).where(passed, used["closed_at"].where(lost_here))
            durations = (end.where(passed | lost_here, self.known_until_) - start) / DAY
        elif b == "won" and used["cycle_days"].notna().any():
            durations = used["cycle_days"]
        else:
            durations = pd.Series(np.nan, index=used.index)
        usable = entered & durations.notna() & (durations >= 0)
        span["rows"] = {"entered": int(entered.sum()), "used": int(usable.sum()), "not_usable": int((entered & ~usable).sum())}
        cure = self.lost_after_days_ is not None or not lost_here.any()
        timed = usable.any() and (outcome[usable] == WON).any()
        if not timed:  # no times (an undated export without cycle_days): rates from counts, nothing open
            trials = entered & outcome.ne(OPEN)
            span["rows"] = {"entered": int(entered.sum()), "used": int(trials.sum()), "not_usable": int((entered & ~trials).sum())}
            span["outcome_model"] = "binomial"
            span["rate_fit"] = self._counts_rate(passed, trials, used["segment"])
            span["rate"] = span["rate_fit"].to_dict()
            span["pooled"] = {"rate": float(passed[trials].mean()) if trials.any() else 0.0}
            span["pooled_fit"] = None
            if used["source"].nunique() > 1:
                span["rate_by_source"] = self._counts_rate(passed, trials, used["source"]).to_dict()
            return span
        families = tuple(FAMILIES) if b in TIMED_STEPS else ("lognormal",)
        d, o = durations[usable].to_numpy(), outcome[usable].to_numpy()
        pooled = OutcomeFit(families, self.confidence, self.resolution_days_, cure=cure, seed=self.seed).fit(d, o)
        span["outcome_model"] = pooled.model_
        span["pooled"] = pooled.to_dict()
        span["pooled_fit"] = pooled
        if self.dated_ and b == "won":
            pace = ClosingPaceFit(self.confidence).fit(start[usable], d, o != OPEN, pooled, self.known_until_)
            span["closing_pace"], span["closing_pace_fit"] = pace.to_dict(), pace
        timed_step = b in TIMED_STEPS
        span["rate_fit"], span["by_segment"], fits = self._groups(d, o, used["segment"][usable].to_numpy(), pooled, f"{a}→{b}", cure, timed_step)
        span["group_fits"] = fits
        span["rate"] = span["rate_fit"].to_dict()
        if used["source"].nunique() > 1:
            by_source, span["by_source"], _ = self._groups(d, o, used["source"][usable].to_numpy(), pooled, f"{a}→{b} by source", cure, timed_step)
            span["rate_by_source"] = by_source.to_dict()
        return span

    def _groups(self, durations: np.ndarray, outcome: np.ndarray, groups: np.ndarray, pooled: OutcomeFit, label: str,
                cure: bool, timed: bool) -> tuple[PooledRates, dict, dict]:
        rates, dicts, fits, notes = fit_groups(durations, outcome, groups, pooled, cure=cure, timed=timed, confidence=self.confidence,
                                               resolution_days=self.resolution_days_, min_events=self.min_segment_events, seed=self.seed)
        self.notes_.extend(f"{label}, {note}" for note in notes)
        return rates, dicts, fits

    def _counts_rate(self, passed: pd.Series, trials: pd.Series, groups: pd.Series) -> PooledRates:
        frame = pd.DataFrame({"group": groups[trials], "passed": passed[trials].astype(int)})
        counts = frame.groupby("group")["passed"].agg(["sum", "count"])
        return PooledRates.from_counts(counts["sum"], counts["count"], confidence=self.confidence, seed=self.seed)

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
                "growth": model.growth_, "growth_note": model.growth_note(), "growth_qaicc": model.growth_qaic_,
                "dispersion": model.dispersion_,
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
        start = self.step_time(used, before_sql)
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

    def scenario_fragment(self, with_response_decay: bool = True, snapshot: str | None = None) -> dict:
        """The calibrated parts of a scenario (segments, lead sources, funnel), in the scenario format.

        Per-segment maps carry a ``default`` (the pooled value) so that they validate whatever other segments
        the base scenario names. With a significant fitted response decay, the SQL rates are those at immediate
        response and the decay comes along; ``with_response_decay=False`` gives the observed SQL rates and no decay
        instead, for a simulation that does not reproduce the organisation's response times. ``snapshot`` names
        the file of open deals, waiting leads and reps at the as-of date (``initial_state.pipeline``).
        """
        funnel: dict = {}
        for rate_key in ("mql_rate", "sql_rate", "opportunity_rate"):
            funnel[rate_key] = {DEFAULT: 1.0}
        stage_conversion = {DEFAULT: 1.0}
        for span in self.spans_.values():
            target = RATE_KEY[span["to"]]
            rates = self._rate_map(span)
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
        discovery = self.spans_.get("sql→opportunity")
        funnel["discovery_days"] = self._duration_map(discovery, "won") if discovery and discovery.get("pooled_fit") else _FIXED_ZERO
        closing = self._closing_span()
        stage: dict = {"name": STAGE_NAME, "conversion": stage_conversion}
        if closing.get("pooled_fit"):
            stage["duration_days"] = self._duration_map(closing, "won")
            stage["lost_duration_days"] = self._lost_duration_map(closing)
        else:
            stage["duration_days"] = {DEFAULT: self.cycle_["distribution"]} if self.cycle_ else _FIXED_ZERO
        funnel["stages"] = [stage]
        if (month_sd := self.closing_pace().get("month_sd")) is not None:  # even 0: the parameter draws give its uncertainty
            funnel["closing_pace"] = {"month_sd": month_sd}
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
        if snapshot is not None:
            fragment["initial_state"] = {"pipeline": snapshot}
        return fragment

    def closing_pace(self) -> dict:
        """The closing stage's pace fit (``ClosingPaceFit.to_dict``; empty for an undated export)."""
        return self._closing_span().get("closing_pace", {})

    def _closing_span(self) -> dict:
        return self.spans_[f"{self.observed_steps_[-2]}→won"]

    @staticmethod
    def _rate_map(span: dict) -> dict[str, float]:
        fit: PooledRates = span["rate_fit"]
        return {DEFAULT: span["pooled"]["rate"], **{str(g): float(r) for g, r in fit.by_group_["rate"].items()}}

    @staticmethod
    def _duration_map(span: dict, outcome: str) -> dict[str, dict]:
        key = "time_to_win" if outcome == "won" else "time_to_lose"
        pooled = span["pooled"][key]
        return {DEFAULT: pooled["distribution"],
                **{s: d[key]["distribution"] for s, d in span.get("by_segment", {}).items() if d.get(key)}}

    def _lost_duration_map(self, span: dict) -> dict[str, dict]:
        """Time to close lost: fitted where losses are recorded; for a cure model, the give-up age (the mapping's
        ``lost_after_days``, else the last age at which a row was seen to convert)."""
        if span["pooled"]["time_to_lose"]:
            return self._duration_map(span, "lost")
        give_up = self.lost_after_days_ or span["pooled"]["aalen_johansen"]["horizon_days"]
        return {DEFAULT: {"dist": "fixed", "value": float(give_up)}}

    def parameter_draws(self, n: int = PARAMETER_DRAWS) -> list[dict[str, object]]:
        """``n`` joint draws of the fragment's fitted parameters from their uncertainty, as ``--set`` paths: rates
        from the pooled model's posterior, times to win and lose from each fit's covariance, lead volumes from the
        arrival model's, the closing pace's spread from its posterior. Seeded by ``seed``: the same data give the
        same draws."""
        rng = np.random.default_rng([self.seed, 12])
        draws: list[dict[str, object]] = [{} for _ in range(n)]
        for span in self.spans_.values():
            target = RATE_KEY[span["to"]]
            if target == "sql_rate" and span["to"] == "sql" and self.response_decay_.get("fitted") and self.response_decay_.get("significant"):
                continue  # the fragment takes the SQL rates at immediate response from the decay fit
            prefix = "funnel.stages.0.conversion" if target == "stage" else f"funnel.{target}"
            rates: PooledRates = span["rate_fit"]
            rows = rng.choice(len(rates.draws_), n, replace=len(rates.draws_) < n)
            pooled: OutcomeFit | None = span.get("pooled_fit")
            default = pooled.rate_draws_[rng.choice(len(pooled.rate_draws_), n)] if pooled is not None else None
            for i in range(n):
                if default is not None:
                    draws[i][f"{prefix}.{DEFAULT}"] = float(default[i])
                for group in rates.draws_.columns:
                    draws[i][f"{prefix}.{group}"] = float(rates.draws_[group].iloc[rows[i]])
            if pooled is None or span["to"] not in TIMED_STEPS:
                continue
            fits = {DEFAULT: pooled, **span.get("group_fits", {})}
            paths = {"won": "funnel.stages.0.duration_days" if span["to"] == "won" else "funnel.discovery_days",
                     "lost": "funnel.stages.0.lost_duration_days" if span["to"] == "won" else None}
            for group, fit in fits.items():
                for i, times in enumerate(fit.parameter_draws(n, rng)):
                    for outcome, distribution in times.items():
                        if paths[outcome]:
                            draws[i][f"{paths[outcome]}.{group}"] = distribution
        for name, arrival in self.arrivals_.items():
            volumes = arrival["model"].volume_draws(self.as_of_.to_period("M") + 1, n, rng)
            for i in range(n):
                draws[i][f"lead_sources.{name}.monthly_volume"] = float(volumes[i])
        pace: ClosingPaceFit | None = self._closing_span().get("closing_pace_fit")
        spreads = pace.draws(n, rng) if pace is not None else None
        if spreads is not None:
            for draw, spread in zip(draws, spreads):
                draw["funnel.closing_pace.month_sd"] = float(spread)
        return draws

    def snapshot(self, used: pd.DataFrame, roster: pd.DataFrame | None = None) -> pd.DataFrame:
        """The pipeline at the as-of date, one row per item (``SNAPSHOT_COLUMNS``): open deals in the calibrated
        stage (``close``) or, if SQL but not yet opportunity, in ``discovery``, with the days spent in it; leads
        waiting for a first touch (when first responses are recorded); reps on staff with their tenure in months.

        A row older than the mapping's ``lost_after_days`` is given up, not in the pipeline.
        """
        items = []
        if self.dated_:
            open_rows = used["outcome"].eq("open") & ~used["lost_undated"]
            reached = self._reached(used)
            closing_step = self.observed_steps_[-2]
            stage_of = pd.Series(STAGE_NAME, index=used.index).where(reached[closing_step])
            entered_at = self.step_time(used, closing_step).where(reached[closing_step])
            if closing_step == "opportunity" and "sql" in self.observed_steps_:
                discovery = reached["sql"] & ~reached["opportunity"]
                stage_of = stage_of.mask(discovery, "discovery")
                entered_at = entered_at.mask(discovery, used["sql_at"])
            deals = open_rows & stage_of.notna()
            items.append(pd.DataFrame({
                "kind": "opportunity", "id": used["id"][deals], "segment": used["segment"][deals],
                "territory": used["territory"][deals].replace(UNSPECIFIED, ""), "stage": stage_of[deals],
                "age_days": ((self.known_until_ - entered_at[deals]) / DAY).round(3),
                "amount": used["amount"][deals].where(used["amount"][deals] > 0),
                "owner": used["owner"][deals].replace(UNSPECIFIED, ""),
            }))
            if "first_response_at" in self._mapped and "sql" in self.observed_steps_:
                waiting_from = used["mql_at"].where(used["mql_at"].notna(), used["created_at"]) if "mql" in self.observed_steps_ else used["created_at"]
                qualified = reached["mql"] if "mql" in reached else pd.Series(True, index=used.index)
                leads = open_rows & qualified & ~reached["sql"] & used["first_response_at"].isna()
                items.append(pd.DataFrame({
                    "kind": "lead", "id": used["id"][leads], "segment": used["segment"][leads],
                    "territory": used["territory"][leads].replace(UNSPECIFIED, ""),
                    "age_days": ((self.known_until_ - waiting_from[leads]) / DAY).round(3),
                }))
        if roster is not None and not pd.isna(self.as_of_):
            on_staff = (roster["start_date"] < self.known_until_) & ~(roster["end_date"] < self.known_until_)
            reps = roster[on_staff]
            items.append(pd.DataFrame({
                "kind": "rep", "id": reps["rep"].astype(str), "role": reps["role"].astype(str),
                "tenure_months": ((self.known_until_ - reps["start_date"]) / DAY / DAYS_PER_MONTH).round(3),
            }))
        frame = pd.concat(items, ignore_index=True) if items else pd.DataFrame()
        return frame.reindex(columns=SNAPSHOT_COLUMNS)

    def to_dict(self, snapshot: str | None = None) -> dict:
        """The calibration file: every fitted value with its interval and sample size, the data's fingerprint,
        dates and audit, the scenario fragment under ``scenario`` and ``parameter_draws``."""
        audit = dict(self.audit_record_)
        return _plain({
            "data": audit.pop("data"),
            "audit": {**audit, "fits": self.fits_},
            "confidence": self.confidence,
            "kpis": self.kpis_,
            "cycle_days": self.cycle_,
            "spans": self.spans_,
            "deal_sizes": self.deal_sizes_,
            "arrivals": {"lead_sources": self.arrivals_, "weekday_weights": self.weekday_weights_},
            "response_decay": self.response_decay_,
            "roster": self.roster_,
            "notes": self.notes_,
            "scenario": self.scenario_fragment(snapshot=snapshot),
            "parameter_draws": self.parameter_draws(),
        })


def fit_groups(durations: np.ndarray, outcome: np.ndarray, groups: np.ndarray, pooled: OutcomeFit, *, cure: bool = False,
               timed: bool = True, confidence: float = CONFIDENCE, resolution_days: float = 1.0, min_events: int = 50,
               seed: int = 0) -> tuple[PooledRates, dict, dict, list[str]]:
    """Each group's own outcome fit in the pooled families, then the rates partially pooled (``PooledRates``).

    A group with fewer than ``min_events`` wins (or losses) keeps its own scale for that time but takes a shared
    shape: the average, weighted by events, of the shapes of the groups with enough of them (the pooled fit's
    shape when none has; over groups with different scales, a pooled fit's own shape would be too wide). For a span
    whose times nobody uses (not ``timed``), groups fit their rates only. Returns the pooled rates, each group's fit
    as a dict and as an object, and notes saying which times were pooled."""
    names = sorted(set(groups))
    data = {group: (durations[groups == group], outcome[groups == group]) for group in names}
    events = {group: {"won": int((o == WON).sum()), "lost": int((o == LOST).sum())} for group, (_, o) in data.items()}
    kinds = ("won", "lost") if pooled.lost_family_ else ("won",)
    small = {group: tuple(k for k in kinds if events[group][k] < min_events) for group in names}
    own = {group: OutcomeFit(confidence=confidence, resolution_days=resolution_days, cure=cure, shapes=pooled.shapes_(), seed=seed).fit(*data[group])
           for group in names if timed and events[group]["won"] and not small[group]}
    shared = pooled.shapes_()
    for kind in kinds:
        donors = [fit for fit in own.values() if fit.params_(kind) is not None]
        if donors:
            weights = np.array([events[g][kind] for g, fit in own.items() if fit.params_(kind) is not None], dtype=float)
            family, params = shared[kind]
            shared[kind] = (family, np.average(np.array([fit.params_(kind) for fit in donors]), axis=0, weights=weights))
    estimates, errors, dicts, fits, notes = {}, {}, {}, {}, []
    for group in names:
        d, o = data[group]
        if not events[group]["won"]:
            estimates[group], errors[group] = 0.0, 1 / np.sqrt((len(d) + 1) * 0.25)
            dicts[group] = {"rows": len(d), "won": 0, "note": "no row won: no time to win of its own"}
            notes.append(f"{group}: no row won; its rate rests on the pooled model")
            continue
        if not timed:
            fit = OutcomeFit(confidence=confidence, resolution_days=resolution_days, tail_from=pooled, seed=seed).fit(d, o)
        elif group in own:
            fit = own[group]
        else:
            fit = OutcomeFit(confidence=confidence, resolution_days=resolution_days, cure=cure, shapes=shared, fixed=small[group],
                             seed=seed).fit(d, o)
            source = "the groups with enough of them" if any(f.params_(k) is not None for f in own.values() for k in small[group]) else "the pooled fit"
            notes.append(f"{group}: {' and '.join(f'time to {_VERB[k]}' for k in small[group])} pooled: "
                         f"{' and '.join(shared[k][0] for k in small[group])} shape from {source}, scaled to the group's own "
                         f"{plural(events[group]['won'], 'win')} and {plural(events[group]['lost'], 'loss', 'losses')} "
                         f"(fewer than {min_events})")
        estimates[group], errors[group], dicts[group] = fit.rate_, fit.rate_logit_se_, fit.to_dict()
        if timed:
            fits[group] = fit
    index = pd.Index(names)
    rates = PooledRates(confidence, seed=seed).fit(pd.Series(estimates).reindex(index), pd.Series(errors).reindex(index),
                                                  pd.Series({g: len(data[g][0]) for g in names}).reindex(index))
    return rates, dicts, fits, notes


def _resolution(used: pd.DataFrame) -> float:
    """The grid durations are read on: a day when every timestamp is a date, else an hour."""
    stamps = pd.concat([used[field] for field in ("created_at", "closed_at", "mql_at", "sql_at", "opportunity_at")]).dropna()
    return 1.0 if stamps.empty or (stamps == stamps.dt.normalize()).all() else 1 / 24


def _plain(value: object) -> object:
    """JSON-ready, with the fitted estimator objects left out."""
    return json_ready(value, drop=frozenset({"fit", "rate_fit", "pooled_fit", "group_fits", "model", "closing_pace_fit"}))


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
