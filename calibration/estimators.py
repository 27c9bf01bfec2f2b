"""The statistical estimators of calibration, each following scikit-learn's contract: ``fit`` returns self and
fitted attributes end in ``_``.

- ``BetaBinomialRate``: a conversion rate per group as a Beta posterior, shrunk toward the pooled rate by an
  empirical-Bayes prior whose strength is fitted by maximum marginal (beta-binomial) likelihood.
- ``DurationFit``: durations with right-censoring (open deals): Kaplan–Meier, and the best of exponential, gamma,
  lognormal and Weibull by AIC, each fitted by censored maximum likelihood (``scipy.stats.CensoredData``).
- ``ArrivalModel``: monthly arrivals as a Poisson log-linear model with trend and calendar-month seasonality.
- ``ResponseDecayFit``: how qualification falls with response time, tested against no decay by likelihood ratio.
- ``AttritionFit``: a monthly leaving hazard from a roster, with an exact Poisson interval.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.differentiate import hessian

from calibration.mapping import CalibrationError
from scenarios.model import DAYS_PER_MONTH, ResponseDecay

CONFIDENCE = 0.95
#: Families tried for durations and amounts: scipy distribution and number of free parameters (location fixed at 0).
FAMILIES: dict[str, tuple[stats.rv_continuous, int]] = {
    "exponential": (stats.expon, 1),
    "gamma": (stats.gamma, 2),
    "lognormal": (stats.lognorm, 2),
    "weibull": (stats.weibull_min, 2),
}


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


class BetaBinomialRate:
    """Conversion rate per group with a credible interval, shrunk toward the pooled rate.

    The prior is Beta(p₀·m, (1 − p₀)·m) around the pooled rate p₀; its strength m (in pseudo-trials) is the
    maximum of the beta-binomial marginal likelihood of the groups' counts, capped at ``max_prior_strength``: with
    few groups that maximum is often unbounded, and an unbounded prior would pull well-measured groups to p₀ and
    their intervals off the truth. A group with few trials thus sits near p₀, one with many near its own rate.
    With a single group the prior is Jeffreys' Beta(½, ½).
    """

    def __init__(self, confidence: float = CONFIDENCE, max_prior_strength: float = 30.0):
        self.confidence = confidence
        self.max_prior_strength = max_prior_strength

    def fit(self, successes: pd.Series, trials: pd.Series) -> "BetaBinomialRate":
        k = successes.astype(float)
        n = trials.astype(float)
        keep = n > 0
        k, n = k[keep], n[keep]
        self.successes_, self.trials_ = int(k.sum()), int(n.sum())
        tail = (1 - self.confidence) / 2
        self.pooled_ = self.successes_ / self.trials_ if self.trials_ else math.nan
        a, b = self.successes_ + 0.5, self.trials_ - self.successes_ + 0.5
        self.pooled_interval_ = tuple(float(x) for x in stats.beta.ppf([tail, 1 - tail], a, b))
        if len(n) >= 2 and self.trials_:
            self.prior_strength_ = self._prior_strength(k.to_numpy(), n.to_numpy())
            p0 = min(max(self.pooled_, 0.5 / (self.trials_ + 1)), 1 - 0.5 / (self.trials_ + 1))
            alpha, beta = p0 * self.prior_strength_, (1 - p0) * self.prior_strength_
        else:
            self.prior_strength_, alpha, beta = 1.0, 0.5, 0.5
        post_a, post_b = alpha + k, beta + n - k
        self.by_group_ = pd.DataFrame({
            "successes": k.astype(int),
            "trials": n.astype(int),
            "observed": k / n,
            "rate": post_a / (post_a + post_b),
            "lower": stats.beta.ppf(tail, post_a, post_b),
            "upper": stats.beta.ppf(1 - tail, post_a, post_b),
        })
        return self

    def _prior_strength(self, k: np.ndarray, n: np.ndarray) -> float:
        p0 = min(max(k.sum() / n.sum(), 1e-6), 1 - 1e-6)
        cap = self.max_prior_strength

        def negative_log_likelihood(log_m: float) -> float:
            m = math.exp(log_m)
            return -float(stats.betabinom.logpmf(k, n, p0 * m, (1 - p0) * m).sum())

        best = optimize.minimize_scalar(negative_log_likelihood, bounds=(0.0, math.log(cap)), method="bounded")
        return float(math.exp(best.x))

    def to_dict(self) -> dict:
        return {
            "pooled": {"rate": self.pooled_, "interval": list(self.pooled_interval_), "successes": self.successes_, "trials": self.trials_},
            "prior_strength": self.prior_strength_,
            "by_group": {
                str(group): {"rate": row.rate, "interval": [row.lower, row.upper], "observed": row.observed,
                             "successes": int(row.successes), "trials": int(row.trials)}
                for group, row in self.by_group_.iterrows()
            },
        }


class DurationFit:
    """A duration distribution from events and right-censored observations (deals still open).

    Kaplan–Meier (``scipy.stats.ecdf``) gives the non-parametric median and P90 with Greenwood intervals; each
    family is then fitted by censored maximum likelihood and the lowest AIC wins. A duration of 0 (closed the day
    it opened, in day-resolution data) is read as lying between 0 and ``resolution_days``. Above ``max_sample``
    observations the parametric fits use a seeded random sample of that size (Kaplan–Meier uses all).
    """

    def __init__(self, families: tuple[str, ...] = tuple(FAMILIES), confidence: float = CONFIDENCE,
                 resolution_days: float = 1.0, max_sample: int = 50_000, seed: int = 0):
        self.families = families
        self.confidence = confidence
        self.resolution_days = resolution_days
        self.max_sample = max_sample
        self.seed = seed

    def fit(self, durations: np.ndarray, observed: np.ndarray) -> "DurationFit":
        durations = np.asarray(durations, dtype=float)
        observed = np.asarray(observed, dtype=bool)
        if len(durations) == 0 or not observed.any():
            raise ValueError("no completed durations to fit")
        self.n_events_, self.n_censored_ = int(observed.sum()), int((~observed).sum())
        self._fit_kaplan_meier(durations, observed)
        sample = np.arange(len(durations))
        if len(sample) > self.max_sample:
            sample = np.sort(np.random.default_rng(self.seed).choice(sample, self.max_sample, replace=False))
        self.n_parametric_ = len(sample)
        data = self._censored(durations[sample], observed[sample])
        self.candidates_: dict[str, dict] = {}
        for name in self.families:
            family, k = FAMILIES[name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    params = family.fit(data, floc=0)
                except (ValueError, RuntimeError, FloatingPointError) as error:
                    self.candidates_[name] = {"error": str(error)}
                    continue
            nll = _censored_nll(family(*params), durations[sample], observed[sample], self.resolution_days)
            if np.isfinite(nll):
                self.candidates_[name] = {"params": params, "aic": 2 * k + 2 * nll}
        fitted = {name: c for name, c in self.candidates_.items() if "aic" in c}
        if not fitted:
            raise ValueError("no distribution family could be fitted")
        self.family_ = min(fitted, key=lambda name: fitted[name]["aic"])
        self.frozen_ = FAMILIES[self.family_][0](*fitted[self.family_]["params"])
        self.median_ = float(self.frozen_.ppf(0.5))
        self.p90_ = float(self.frozen_.ppf(0.9))
        return self

    def _censored(self, durations: np.ndarray, observed: np.ndarray) -> stats.CensoredData:
        zero = observed & (durations <= 0)
        exact = observed & ~zero
        censored = ~observed & (durations > 0)
        interval = np.column_stack([np.zeros(zero.sum()), np.full(zero.sum(), self.resolution_days)])
        return stats.CensoredData(uncensored=durations[exact], right=durations[censored], interval=interval)

    def _fit_kaplan_meier(self, durations: np.ndarray, observed: np.ndarray) -> None:
        result = stats.ecdf(stats.CensoredData(uncensored=durations[observed], right=durations[~observed]))
        sf = result.sf
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Greenwood's band is undefined where survival reaches 0
            band = sf.confidence_interval(self.confidence)
        times = sf.quantiles

        def crossing(values: np.ndarray, level: float) -> float | None:
            below = np.flatnonzero(values <= level)
            return float(times[below[0]]) if below.size else None

        self.km_times_, self.km_survival_ = times, sf.probabilities
        self.km_median_ = crossing(sf.probabilities, 0.5)
        self.km_median_interval_ = [crossing(band.low.probabilities, 0.5), crossing(band.high.probabilities, 0.5)]
        self.km_p90_ = crossing(sf.probabilities, 0.1)
        self.km_p90_interval_ = [crossing(band.low.probabilities, 0.1), crossing(band.high.probabilities, 0.1)]
        self.km_p99_ = crossing(sf.probabilities, 0.01)
        self.longest_event_ = float(durations[observed].max())

    def distribution(self) -> dict:
        """The fitted family in the scenario's distribution format."""
        return scenario_distribution(self.family_, self.frozen_)

    def to_dict(self) -> dict:
        return {
            "distribution": self.distribution(),
            "median": self.median_,
            "p90": self.p90_,
            "kaplan_meier": {
                "median": self.km_median_, "median_interval": self.km_median_interval_,
                "p90": self.km_p90_, "p90_interval": self.km_p90_interval_,
            },
            "n_events": self.n_events_,
            "n_censored": self.n_censored_,
            "n_parametric_fit": self.n_parametric_,
            "aic": {name: c.get("aic") for name, c in self.candidates_.items()},
        }


def _censored_nll(frozen, durations: np.ndarray, observed: np.ndarray, resolution: float) -> float:  # noqa: ANN001
    """Negative log-likelihood of exact, zero (0..resolution) and right-censored durations."""
    exact = observed & (durations > 0)
    zero = observed & (durations <= 0)
    censored = ~observed & (durations > 0)
    zero_term = zero.sum() * frozen.logcdf(resolution) if zero.any() else 0.0
    return -float(frozen.logpdf(durations[exact]).sum() + zero_term + frozen.logsf(durations[censored]).sum())


def scenario_distribution(family: str, frozen) -> dict:  # noqa: ANN001 - a frozen scipy distribution
    """A fitted scipy distribution (location 0) written as the scenario format writes it."""
    args, kwds = frozen.args, frozen.kwds
    shape = args[0] if args else None
    scale = kwds.get("scale", args[-1] if len(args) > 1 else 1.0)
    if family == "exponential":
        return {"dist": "exponential", "mean": float(scale)}
    if family == "gamma":
        return {"dist": "gamma", "shape": float(shape), "scale": float(scale)}
    if family == "lognormal":
        return {"dist": "lognormal", "mu": float(np.log(scale)), "sigma": float(shape)}
    return {"dist": "weibull", "shape": float(shape), "scale": float(scale)}


class AmountFit:
    """Deal sizes: the best family by AIC (all observations exact), the median and P90 with distribution-free
    intervals (``scipy.stats.quantile_test``); below ``min_parametric`` amounts, the empirical distribution."""

    def __init__(self, confidence: float = CONFIDENCE, min_parametric: int = 20, seed: int = 0):
        self.confidence = confidence
        self.min_parametric = min_parametric
        self.seed = seed

    def fit(self, amounts: np.ndarray) -> "AmountFit":
        amounts = np.asarray(amounts, dtype=float)
        if len(amounts) == 0:
            raise ValueError("no amounts to fit")
        self.n_ = len(amounts)
        self.median_, self.p90_ = float(np.median(amounts)), float(np.quantile(amounts, 0.9))
        self.median_interval_ = self._quantile_interval(amounts, 0.5)
        self.p90_interval_ = self._quantile_interval(amounts, 0.9)
        self.mean_ = float(amounts.mean())
        if self.n_ < self.min_parametric:
            self.distribution_ = {"dist": "empirical", "values": sorted(float(a) for a in amounts)}
            self.family_ = "empirical"
        else:
            fit = DurationFit(resolution_days=1e-9, seed=self.seed).fit(amounts, np.ones(self.n_, dtype=bool))
            self.distribution_, self.family_ = fit.distribution(), fit.family_
        return self

    def _quantile_interval(self, amounts: np.ndarray, p: float) -> list[float | None]:
        if len(amounts) < 2:
            return [None, None]
        interval = stats.quantile_test(amounts, q=np.quantile(amounts, p), p=p).confidence_interval(self.confidence)
        return [None if not np.isfinite(x) else float(x) for x in (interval.low, interval.high)]

    def to_dict(self) -> dict:
        return {
            "distribution": self.distribution_, "n": self.n_, "mean": self.mean_,
            "median": self.median_, "median_interval": self.median_interval_,
            "p90": self.p90_, "p90_interval": self.p90_interval_,
        }


class ArrivalModel:
    """Arrivals per month: counts ~ Poisson(exposure days × exp(a + b·month + s[calendar month])).

    Partial first and last months count by the days they cover. Seasonality needs every calendar month seen at
    least twice (24 months), a trend at least ``min_months_for_trend`` months; otherwise they are 1 and 0. The
    scenario's ``monthly_volume`` is the level (without seasonality) in the reference month, normally the month
    after the as-of date, and its seasonality multipliers average 1.
    """

    def __init__(self, confidence: float = CONFIDENCE, min_months_for_trend: int = 3):
        self.confidence = confidence
        self.min_months_for_trend = min_months_for_trend

    def fit(self, created: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> "ArrivalModel":
        """Fit the counts of ``created`` over the days ``start`` to ``end``, both included whole."""
        start, end = pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize()
        months = pd.period_range(start.to_period("M"), end.to_period("M"), freq="M")
        self.start_month_ = months[0]
        days = pd.date_range(start, end, freq="D")
        exposure = pd.Series(1.0, index=days).groupby(days.to_period("M")).sum().reindex(months).to_numpy()
        counts = created.dt.to_period("M").value_counts().reindex(months, fill_value=0).to_numpy(dtype=float)
        self.counts_ = pd.Series(counts.astype(int), index=[str(m) for m in months])
        index = np.arange(len(months), dtype=float)
        calendar = months.month.to_numpy() - 1
        columns = [np.ones(len(months))]
        self.has_trend_ = len(months) >= self.min_months_for_trend and counts.sum() > 0
        if self.has_trend_:
            columns.append(index - index.mean())
        self.has_seasonality_ = len(months) >= 24
        if self.has_seasonality_:
            columns.extend((calendar == c).astype(float) for c in range(1, 12))
        design = np.column_stack(columns)
        coef, cov = _poisson_regression(design, counts, np.log(exposure))
        self._centre = index.mean()
        self.coef_, self.cov_ = coef, cov
        seasonal_log = np.zeros(12)
        if self.has_seasonality_:
            seasonal_log[1:] = coef[-11:]
        multipliers = np.exp(seasonal_log)
        self._mean_season = multipliers.mean()
        self.seasonality_ = (multipliers / self._mean_season).tolist()
        slope = coef[1] if self.has_trend_ else 0.0
        self.trend_ = _expm1(slope)
        z = _z(self.confidence)
        slope_se = math.sqrt(cov[1, 1]) if self.has_trend_ else 0.0
        self.trend_interval_ = [_expm1(slope - z * slope_se), _expm1(slope + z * slope_se)]
        self.n_ = int(counts.sum())
        self.months_ = len(months)
        return self

    def monthly_volume(self, month: pd.Period) -> tuple[float, list[float]]:
        """Leads in a month of average length at ``month`` (without seasonality), with its interval."""
        offset = (month - self.start_month_).n - self._centre
        vector = np.zeros(len(self.coef_))
        vector[0] = 1.0
        if self.has_trend_:
            vector[1] = offset
        log_rate = float(vector @ self.coef_)
        se = math.sqrt(max(float(vector @ self.cov_ @ vector), 0.0))
        z = _z(self.confidence)
        scale = self._mean_season * DAYS_PER_MONTH
        volume = scale * _exp(log_rate)
        if not math.isfinite(volume):
            raise CalibrationError("arrivals", [f"the fitted trend ({self.trend_:+.0%} a month) extrapolated to {month} "
                                               "gives no finite volume; calibrate with an as-of date nearer the data"])
        return volume, [scale * _exp(log_rate - z * se), scale * _exp(log_rate + z * se)]


#: Above this, ``math.exp`` overflows.
_MAX_EXPONENT = math.log(np.finfo(float).max)


def _exp(x: float) -> float:
    """``exp(x)``, infinite instead of an OverflowError."""
    return math.exp(x) if x < _MAX_EXPONENT else math.inf


def _expm1(x: float) -> float:
    """``exp(x) − 1``, infinite instead of an OverflowError."""
    return float(math.expm1(x)) if x < _MAX_EXPONENT else math.inf


def _poisson_regression(design: np.ndarray, counts: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood Poisson regression with a log link; returns coefficients and their covariance."""
    start = np.zeros(design.shape[1])
    start[0] = math.log(max(counts.sum(), 0.5) / np.exp(offset).sum())

    def nll(beta: np.ndarray) -> float:
        eta = offset + design @ beta
        return float(np.exp(eta).sum() - counts @ eta)

    def gradient(beta: np.ndarray) -> np.ndarray:
        return design.T @ (np.exp(offset + design @ beta) - counts)

    def information(beta: np.ndarray) -> np.ndarray:
        return design.T @ (np.exp(offset + design @ beta)[:, None] * design)

    result = optimize.minimize(nll, start, jac=gradient, hess=information, method="trust-exact")
    return result.x, np.linalg.pinv(information(result.x))


def weekday_weights(created: pd.Series, start: pd.Timestamp, end: pd.Timestamp) -> list[float]:
    """Arrivals per weekday (Monday first) relative to the average day, counting each weekday's days in the window."""
    days = pd.date_range(pd.Timestamp(start).normalize(), pd.Timestamp(end).normalize(), freq="D")
    exposure = np.bincount(days.day_of_week, minlength=7).astype(float)
    counts = np.bincount(created.dt.day_of_week, minlength=7).astype(float)
    per_day = np.divide(counts, exposure, out=np.zeros(7), where=exposure > 0)
    return (per_day / per_day.mean()).tolist() if per_day.mean() > 0 else [1.0] * 7


class ResponseDecayFit:
    """The SQL rate as a function of response hours h: ``p[segment] · (floor + (1 − floor)·0.5^(h / half_life))``.

    Fitted by maximum likelihood and compared by a likelihood-ratio test (2 degrees of freedom) with a constant
    rate per segment; ``significant_`` says whether the data show a decay at the 5 % level. Wald intervals come
    from the Hessian of the log-likelihood (``scipy.differentiate.hessian``) on the unconstrained scale.
    """

    def __init__(self, confidence: float = CONFIDENCE, level: float = 0.05):
        self.confidence = confidence
        self.level = level

    def fit(self, hours: np.ndarray, qualified: np.ndarray, segments: np.ndarray) -> "ResponseDecayFit":
        hours = np.asarray(hours, dtype=float)
        y = np.asarray(qualified, dtype=float)
        self.segments_, group = np.unique(np.asarray(segments), return_inverse=True)
        g = len(self.segments_)
        default = ResponseDecay()
        rates0 = np.clip(np.bincount(group, weights=y, minlength=g) / np.bincount(group, minlength=g), 1e-6, 1 - 1e-6)

        def nll(theta: np.ndarray) -> np.ndarray:
            """Vectorised over trailing axes of theta (for scipy.differentiate)."""
            theta = np.asarray(theta, dtype=float)
            flat = theta.reshape(theta.shape[0], -1)
            p = stats.logistic.cdf(flat[:g])[group]
            half_life, floor = np.exp(flat[g]), stats.logistic.cdf(flat[g + 1])
            q = np.clip(p * (floor + (1 - floor) * 0.5 ** (hours[:, None] / half_life)), 1e-12, 1 - 1e-12)
            out = -(y[:, None] * np.log(q) + (1 - y[:, None]) * np.log1p(-q)).sum(axis=0)
            return out.reshape(theta.shape[1:])

        start = np.concatenate([stats.logistic.ppf(rates0), [math.log(default.half_life_hours), stats.logistic.ppf(default.floor)]])
        result = optimize.minimize(lambda t: float(nll(t[:, None])[0]), start, method="L-BFGS-B",
                                   bounds=[(-12, 12)] * g + [(math.log(0.05), math.log(24 * 365))] + [(-12, 12)])
        theta = result.x
        null_nll = -float((y * np.log(rates0[group]) + (1 - y) * np.log1p(-rates0[group])).sum())
        self.likelihood_ratio_ = max(2 * (null_nll - result.fun), 0.0)
        self.p_value_ = float(stats.chi2.sf(self.likelihood_ratio_, 2))
        self.significant_ = self.p_value_ < self.level
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            curvature = hessian(nll, theta).ddf
        se = np.sqrt(np.clip(np.diag(np.linalg.pinv(curvature)), 0.0, None))
        z = _z(self.confidence)
        low, high = theta - z * se, theta + z * se
        self.rates_ = {str(s): {"rate": float(stats.logistic.cdf(theta[i])),
                                "interval": [float(stats.logistic.cdf(low[i])), float(stats.logistic.cdf(high[i]))]}
                       for i, s in enumerate(self.segments_)}
        self.half_life_hours_ = float(math.exp(theta[g]))
        self.half_life_interval_ = [float(math.exp(low[g])), float(math.exp(high[g]))]
        self.floor_ = float(stats.logistic.cdf(theta[g + 1]))
        self.floor_interval_ = [float(stats.logistic.cdf(low[g + 1])), float(stats.logistic.cdf(high[g + 1]))]
        self.n_ = len(y)
        return self

    def to_dict(self) -> dict:
        return {
            "fitted": True,
            "significant": self.significant_, "p_value": self.p_value_, "likelihood_ratio": self.likelihood_ratio_,
            "half_life_hours": self.half_life_hours_, "half_life_interval": self.half_life_interval_,
            "floor": self.floor_, "floor_interval": self.floor_interval_,
            "sql_rate_at_immediate_response": self.rates_, "n": self.n_,
        }


class AttritionFit:
    """Monthly leaving hazard of a role: leavers / rep-months on staff, with the exact (Garwood) Poisson interval."""

    def __init__(self, confidence: float = CONFIDENCE):
        self.confidence = confidence

    def fit(self, months_on_staff: np.ndarray, left: np.ndarray) -> "AttritionFit":
        exposure = float(np.sum(months_on_staff))
        leavers = int(np.sum(left))
        tail = (1 - self.confidence) / 2
        low = stats.chi2.ppf(tail, 2 * leavers) / 2 if leavers else 0.0
        high = stats.chi2.ppf(1 - tail, 2 * leavers + 2) / 2
        to_hazard = (lambda rate: float(-math.expm1(-rate / exposure))) if exposure > 0 else (lambda rate: math.nan)
        self.leavers_, self.rep_months_ = leavers, exposure
        self.hazard_ = to_hazard(leavers)
        self.interval_ = [to_hazard(low), to_hazard(high)]
        return self

    def to_dict(self) -> dict:
        return {"monthly_hazard": self.hazard_, "interval": self.interval_, "leavers": self.leavers_, "rep_months": self.rep_months_}
