"""The statistical estimators of calibration, each following scikit-learn's contract: ``fit`` returns self and
fitted attributes end in ``_``.

- ``PooledRates``: rates of groups partially pooled by a normal hierarchical model on the logit scale, its
  between-group spread integrated over its posterior (estimated, not capped).
- ``aalen_johansen`` and ``OutcomeFit``: competing outcomes (won, lost, open) by the Aalen–Johansen cumulative
  incidences and a parametric mixture per outcome; without recorded losses, the mixture cure model.
- ``DurationFit``: durations with right-censoring (open deals): Kaplan–Meier, and the best of exponential, gamma,
  lognormal, Weibull and log-logistic by AIC, each fitted by censored maximum likelihood (``scipy.stats.CensoredData``).
- ``ArrivalModel``: monthly arrivals as a Poisson log-linear model with trend and calendar-month seasonality.
- ``ResponseDecayFit``: how qualification falls with response time, tested against no decay by likelihood ratio.
- ``AttritionFit``: a monthly leaving hazard from a roster, with an exact Poisson interval.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
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
    "loglogistic": (stats.fisk, 2),
}
#: Families with a finite mean whatever their parameters (deal sizes: the headcount plan uses the mean).
FINITE_MEAN_FAMILIES = ("exponential", "gamma", "lognormal", "weibull")


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


class PooledRates:
    """Rates of groups (segments, sources) partially pooled by a hierarchical model on the logit scale.

    Each group's estimate y_j (the logit of its own rate) with standard error s_j is read as y_j ~ N(θ_j, s_j²),
    θ_j ~ N(μ, τ²): the normal hierarchical model of Gelman et al., *Bayesian Data Analysis* (3rd ed., §5.4), with
    a flat prior on μ and a uniform prior on the between-group spread τ over ``(0, max_spread]``. τ is integrated
    over a grid from its exact marginal posterior, not fixed or capped; ``spread_`` reports it and
    ``by_group_["shrinkage"]`` each group's weight on the common mean, E[s²/(s² + τ²)]: near 0 for a group with
    plenty of data (it keeps its own rate), larger for a small one. One group is not pooled.

    The point estimate is the posterior median, and ``draws_`` are joint posterior draws of the groups' rates
    (columns), for parameter uncertainty downstream. The interval is not the posterior's: a posterior interval
    covers on average over groups, and under-covers a group whose true rate lies far from the others' (pooling
    pulls it toward them). Each group's interval is the FAB ("frequentist, assisted by Bayes") confidence interval
    of Pratt (*JASA* 1963) and Yu & Hoff (*Biometrika* 2018, "Adaptive multigroup confidence intervals with constant
    coverage"): it holds θ_j with the nominal probability whatever θ_j is, and is shortest where the prior taken from
    the *other* groups' hierarchical fit puts θ_j (``fab_interval``). With fewer than three groups the others say
    nothing of the spread, and the interval is the group's own.
    """

    def __init__(self, confidence: float = CONFIDENCE, n_draws: int = 4000, max_spread: float = 10.0, seed: int = 0):
        self.confidence = confidence
        self.n_draws = n_draws
        self.max_spread = max_spread
        self.seed = seed

    def fit(self, estimates: pd.Series, standard_errors: pd.Series, trials: pd.Series) -> "PooledRates":
        """``estimates``: each group's own rate; ``standard_errors``: of its logit; ``trials``: rows behind it."""
        groups = estimates.index
        n = trials.to_numpy(dtype=float)
        y = special.logit(np.clip(estimates.to_numpy(dtype=float), 0.5 / (n + 1), 1 - 0.5 / (n + 1)))
        s2 = standard_errors.to_numpy(dtype=float) ** 2
        rng = np.random.default_rng(self.seed)
        tail = (1 - self.confidence) / 2
        if len(y) < 2:
            theta = y + np.sqrt(s2) * rng.standard_normal((self.n_draws, len(y)))
            self.spread_ = None
            shrinkage = np.zeros(len(y))
        else:
            tau, weights, mu_hat, v_mu = self._spread_posterior(y, s2)
            pick = rng.choice(len(tau), self.n_draws, p=weights)
            mu = mu_hat[pick] + np.sqrt(v_mu[pick]) * rng.standard_normal(self.n_draws)
            precision = 1 / s2[None, :] + 1 / tau[pick, None] ** 2
            mean = (y / s2 + mu[:, None] / tau[pick, None] ** 2) / precision
            theta = mean + rng.standard_normal((self.n_draws, len(y))) / np.sqrt(precision)
            self.spread_ = {"tau_median": float(tau[_quantile_index(weights, 0.5)]),
                            "tau_interval": [float(tau[_quantile_index(weights, tail)]), float(tau[_quantile_index(weights, 1 - tail)])],
                            "scale": "logit", "prior": f"uniform on (0, {self.max_spread:g}]"}
            shrinkage = (weights[:, None] * (s2[None, :] / (s2[None, :] + tau[:, None] ** 2))).sum(axis=0)
        rates = special.expit(theta)
        lower, upper = self._intervals(y, s2)
        self.draws_ = pd.DataFrame(rates, columns=groups)
        self.by_group_ = pd.DataFrame({
            "observed": estimates.to_numpy(dtype=float), "trials": n.astype(int),
            "rate": np.median(rates, axis=0), "lower": special.expit(lower), "upper": special.expit(upper),
            "shrinkage": shrinkage,
        }, index=groups)
        return self

    def _spread_posterior(self, y: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """τ's grid and posterior weights, and at each τ the posterior mean and variance of μ (BDA §5.4)."""
        tau = np.linspace(self.max_spread / 2000, self.max_spread, 2000)
        total = s2[None, :] + tau[:, None] ** 2
        v_mu = 1 / (1 / total).sum(axis=1)
        mu_hat = v_mu * (y / total).sum(axis=1)
        log_post = 0.5 * np.log(v_mu) - 0.5 * (np.log(total) + (y - mu_hat[:, None]) ** 2 / total).sum(axis=1)
        weights = np.exp(log_post - log_post.max())
        return tau, weights / weights.sum(), mu_hat, v_mu

    def _intervals(self, y: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each group's FAB interval (logit scale), its prior the predictive distribution of a new group's logit
        from the other groups' fit at their posterior median τ: N(μ̂, τ² + Var μ)."""
        s = np.sqrt(s2)
        if len(y) < 3:
            z = _z(self.confidence)
            return y - z * s, y + z * s
        bounds = []
        for j in range(len(y)):
            others = np.arange(len(y)) != j
            tau, weights, mu_hat, v_mu = self._spread_posterior(y[others], s2[others])
            at = _quantile_index(weights, 0.5)
            bounds.append(fab_interval(y[j], s[j], mu_hat[at], tau[at] ** 2 + v_mu[at], self.confidence))
        lower, upper = np.array(bounds).T
        return lower, upper

    @classmethod
    def from_counts(cls, successes: pd.Series, trials: pd.Series, **options) -> "PooledRates":
        """Pooled binomial counts: each group's estimate (k + ½)/(n + 1) with the logit's binomial standard error."""
        k, n = successes.astype(float), trials.astype(float)
        p = (k + 0.5) / (n + 1)
        return cls(**options).fit(p, 1 / np.sqrt((n + 1) * p * (1 - p)), n)

    def to_dict(self) -> dict:
        return {
            "pooling": {"spread": self.spread_, "model": "normal hierarchical model on the logit scale (Gelman et al., BDA §5.4)",
                        "interval": "FAB confidence interval, constant coverage per group (Yu & Hoff, Biometrika 2018)"},
            "by_group": {
                str(group): {"rate": row.rate, "interval": [row.lower, row.upper], "own_estimate": row.observed,
                             "shrinkage": row.shrinkage, "rows": int(row.trials)}
                for group, row in self.by_group_.iterrows()
            },
        }


def _quantile_index(weights: np.ndarray, q: float) -> int:
    """The position of the ``q`` quantile of sorted values with probabilities ``weights``."""
    return int(min(np.searchsorted(np.cumsum(weights), q), len(weights) - 1))


@functools.cache
def _fab_split(alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """A grid of the FAB split w and g(w) = Φ⁻¹(αw) − Φ⁻¹(α(1 − w)), increasing, to invert g by interpolation."""
    w = special.expit(np.linspace(-28, 28, 4001))
    return w, special.ndtri(alpha * w) - special.ndtri(alpha * (1 - w))


def fab_interval(y: float, s: float, prior_mean: float, prior_variance: float, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The FAB confidence interval of θ from y ~ N(θ, s²) (Pratt, *JASA* 1963; Yu & Hoff, *Biometrika* 2018).

    For each θ, the test of θ puts a share w(θ) of its level α = 1 − ``confidence`` on its upper tail and 1 − w(θ)
    on its lower tail, so every θ is covered with probability exactly 1 − α, whatever the prior. The split that
    makes the interval shortest on average under the prior θ ~ N(m, t²) is w(θ) = g⁻¹(2s(θ − m)/t²), with
    g(w) = Φ⁻¹(αw) − Φ⁻¹(α(1 − w)); the interval is every θ whose test accepts y."""
    alpha = 1 - confidence
    w, g = _fab_split(alpha)

    def split(theta: float) -> float:
        return float(np.interp(2 * s * (theta - prior_mean) / prior_variance, g, w))

    def lower_end(theta: float) -> float:
        return theta - y - s * special.ndtri(alpha * (1 - split(theta)))

    def upper_end(theta: float) -> float:
        return theta - y - s * special.ndtri(1 - alpha * split(theta))

    reach = 60 * s
    return optimize.brentq(lower_end, y - reach, y + reach), optimize.brentq(upper_end, y - reach, y + reach)


def aalen_johansen(times: np.ndarray, outcome: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Cumulative incidence of each outcome (1 won, 2 lost; 0 open, right-censored) by the Aalen–Johansen
    estimator (Aalen & Johansen, 1978), with ties handled exactly: at each distinct time, events of either kind
    leave the risk set before the censored rows. ``weights`` count each row (a bootstrap's Poisson weights);
    columns of a 2-D ``weights`` are independent replicates. Returns ``times``, ``won``, ``lost`` (cumulative
    incidences just after each time) and ``open`` (the probability of being still open)."""
    order = np.argsort(times, kind="stable")
    times, outcome = np.asarray(times)[order], np.asarray(outcome)[order]
    weights = np.ones((len(times), 1)) if weights is None else np.asarray(weights, dtype=float).reshape(len(order), -1)[order]
    starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    unique = times[starts]
    counts = {kind: np.add.reduceat(weights * (outcome == kind)[:, None], starts, axis=0) for kind in (0, 1, 2)}
    leaving = counts[0] + counts[1] + counts[2]
    at_risk = leaving[::-1].cumsum(axis=0)[::-1]
    hazard_won = np.divide(counts[1], at_risk, out=np.zeros_like(at_risk), where=at_risk > 0)
    hazard_lost = np.divide(counts[2], at_risk, out=np.zeros_like(at_risk), where=at_risk > 0)
    survival = np.cumprod(1 - hazard_won - hazard_lost, axis=0)
    before = np.vstack([np.ones((1, survival.shape[1])), survival[:-1]])
    return {"times": unique, "won": np.cumsum(before * hazard_won, axis=0), "lost": np.cumsum(before * hazard_lost, axis=0),
            "open": survival}


def _unfrozen(family: str, theta: np.ndarray) -> tuple[stats.rv_continuous, tuple]:
    """A family's scipy distribution and its arguments (broadcast over the columns of ``theta``), from
    unconstrained parameters: θ₀ = log scale (for the lognormal μ), θ₁ = log shape. A draw far in the tail of a
    poorly identified fit is held to scales that stay finite (e^±700 days: never and always, alike here)."""
    scale = np.exp(np.clip(theta[0], -700.0, 700.0))
    if family == "exponential":
        return stats.expon, (0.0, scale)
    return FAMILIES[family][0], (np.exp(theta[1]), 0.0, scale)


def _frozen(family: str, theta: np.ndarray):  # noqa: ANN202 - a frozen scipy distribution
    """A family's scipy distribution from unconstrained parameters: θ₀ = log scale (for the lognormal μ), θ₁ = log shape."""
    scale = math.exp(theta[0])
    if family == "exponential":
        return stats.expon(scale=scale)
    return FAMILIES[family][0](math.exp(theta[1]), scale=scale)


WON, LOST, OPEN = 1, 2, 0
_GRADIENT_STEP = 1e-5


class OutcomeFit:
    """How deals (or leads) of one group end: won, lost or still open, and when, from every row.

    - The **won rate** is the Aalen–Johansen cumulative incidence of winning at the last event time (where it levels
      off), plus the share still open there times their modelled chance of winning; its interval is a Poisson
      bootstrap of the rows (``n_bootstrap``, seeded). Open rows count as right-censored at their age.
    - **Times to win and to lose** come from a parametric mixture: a row wins with probability p after a time
      from the won family, else is lost after a time from the lost family; an open row of age c contributes
      p·S_won(c) + (1 − p)·S_lost(c). The families are chosen by AIC among ``families``, the parameters fitted by
      censored maximum likelihood (``scipy.optimize`` on ``scipy.stats`` log-densities), their covariance from
      the likelihood's Hessian (``scipy.differentiate.hessian``).
    - Without recorded losses (``cure=True``) this is the **mixture cure model** (Boag, 1949; Farewell, 1982): a
      share 1 − p never converts, and it is compared by AIC with the non-cure fit (p = 1, every row converts if
      one waits long enough); ``model_`` says which the data support.
    - ``tail_from`` (a pooled fit) skips the parametric part: the rate's tail is taken from that fit, and no times
      are fitted (for a group whose times nobody uses).
    - ``shapes`` (outcome → family and parameters of a pooled fit) fixes the families; for the outcomes in ``fixed``
      it fixes their shape too, leaving only the scale free: a small group's times are the pooled shape scaled to
      its own data.

    Durations are read on a grid of ``resolution_days`` (0 is the interval (0, resolution)); above ``max_sample``
    rows the parametric fit uses a seeded random sample (the Aalen–Johansen estimate uses all rows).
    """

    def __init__(self, families: tuple[str, ...] = tuple(FAMILIES), confidence: float = CONFIDENCE,
                 resolution_days: float = 1.0, cure: bool = False, shapes: dict[str, tuple[str, np.ndarray]] | None = None,
                 fixed: tuple[str, ...] = (), tail_from: "OutcomeFit | None" = None, n_bootstrap: int = 200, max_sample: int = 50_000, seed: int = 0):
        self.families = families
        self.confidence = confidence
        self.resolution_days = resolution_days
        self.cure = cure
        self.shapes = shapes
        self.fixed = fixed
        self.tail_from = tail_from
        self.n_bootstrap = n_bootstrap
        self.max_sample = max_sample
        self.seed = seed

    def fit(self, durations: np.ndarray, outcome: np.ndarray) -> "OutcomeFit":
        """``durations``: days to the end (won, lost) or to the as-of date (open); ``outcome``: WON, LOST or OPEN."""
        grid = np.maximum(np.round(np.asarray(durations, dtype=float) / self.resolution_days), 0) * self.resolution_days
        outcome = np.asarray(outcome)
        self.n_ = len(grid)
        self.n_won_, self.n_lost_ = int((outcome == WON).sum()), int((outcome == LOST).sum())
        self.n_open_ = self.n_ - self.n_won_ - self.n_lost_
        if self.n_won_ == 0:
            raise ValueError("no won rows to fit")
        rng = np.random.default_rng(self.seed)
        sample = np.arange(self.n_)
        if self.n_ > self.max_sample:
            sample = np.sort(rng.choice(sample, self.max_sample, replace=False))
        if self.tail_from is None:
            self._data = self._compress(grid[sample], outcome[sample])
            self._fit_mixture()
        self._fit_aalen_johansen(grid, outcome, rng)
        return self

    # ----- the parametric mixture -----

    def _compress(self, t: np.ndarray, outcome: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per outcome: distinct durations and how many rows have each."""
        data = {}
        for kind in (WON, LOST, OPEN):
            values, counts = np.unique(t[outcome == kind], return_counts=True)
            data[kind] = (values, counts.astype(float))
        return data

    def _log_terms(self, family: str, theta: np.ndarray, values: np.ndarray, survival: bool = False) -> np.ndarray:
        """Log-density (or log-survival) of ``values`` (rows) under the family at each column of ``theta``; a
        duration of 0 is the interval (0, resolution)."""
        distribution, args = _unfrozen(family, theta)
        x = values[:, None]
        if survival:
            return distribution.logsf(np.maximum(x, self.resolution_days / 2), *args)
        zero = x <= 0
        return np.where(zero, distribution.logcdf(self.resolution_days, *args), distribution.logpdf(np.where(zero, 1.0, x), *args))

    def _nll(self, theta: np.ndarray, won: str, lost: str | None, with_p: bool) -> np.ndarray:
        """Negative log-likelihood at each column of θ = [logit p, won parameters…, lost parameters…] (without
        p when ``with_p`` is False and there are no losses: the non-cure fit, p = 1). Vectorised for the Hessian."""
        theta = np.asarray(theta, dtype=float)
        shape = theta.shape[1:]
        theta = theta.reshape(theta.shape[0], -1)
        k_won = self._free(won, "won")
        if with_p:
            log_p, log_q, offset = special.log_expit(theta[0]), special.log_expit(-theta[0]), 1
        else:
            log_p, log_q, offset = np.zeros(theta.shape[1]), np.full(theta.shape[1], -np.inf), 0
        won_theta = self._full(won, theta[offset:offset + k_won], "won")
        values, counts = self._data[WON]
        total = counts @ (log_p + self._log_terms(won, won_theta, values))
        open_values, open_counts = self._data[OPEN]
        open_won = log_p + self._log_terms(won, won_theta, open_values, survival=True)
        if lost is not None:
            lost_theta = self._full(lost, theta[offset + k_won:], "lost")
            values, counts = self._data[LOST]
            total = total + counts @ (log_q + self._log_terms(lost, lost_theta, values))
            open_lost = log_q + self._log_terms(lost, lost_theta, open_values, survival=True)
        else:
            open_lost = np.broadcast_to(log_q, open_won.shape)
        total = total + open_counts @ np.logaddexp(open_won, open_lost)
        return np.where(np.isfinite(total), -total, 1e300).reshape(shape)

    def _free(self, family: str, outcome: str) -> int:
        """Free parameters of an outcome's family: all, or the scale alone when its shape is fixed."""
        return 1 if outcome in self.fixed else FAMILIES[family][1]

    def _full(self, family: str, free: np.ndarray, outcome: str) -> np.ndarray:
        """All parameters (rows) from the free ones: a fixed shape is filled in."""
        if outcome in self.fixed:
            fixed = np.asarray(self.shapes[outcome][1][1:], dtype=float).reshape(-1, *([1] * (np.ndim(free) - 1)))
            return np.concatenate([free[:1], np.broadcast_to(fixed, (len(fixed), *np.shape(free)[1:]))])
        return free

    def _start(self, family: str, outcome: int) -> np.ndarray:
        values, counts = self._data[outcome]
        typical = float(np.exp(np.average(np.log(np.maximum(values, self.resolution_days)), weights=counts))) if counts.sum() else 30.0
        return np.array([math.log(typical), 0.0][:self._free(family, "won" if outcome == WON else "lost")])

    def _objective(self, won: str, lost: str | None, with_p: bool):  # noqa: ANN202 - a function
        """The negative log-likelihood and its central-difference gradient, computed in one vectorised call."""
        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            k = len(theta)
            steps = _GRADIENT_STEP * np.hstack([np.zeros((k, 1)), np.eye(k), -np.eye(k)])
            values = self._nll(theta[:, None] + steps, won, lost, with_p)
            return float(values[0]), (values[1:k + 1] - values[k + 1:]) / (2 * _GRADIENT_STEP)
        return objective

    def _fit_one(self, won: str, lost: str | None, cure: bool) -> dict:
        """One fit by maximum likelihood; without losses, ``cure`` says whether a share may never win."""
        with_p = lost is not None or cure
        share = self.n_won_ / max(self.n_won_ + self.n_lost_, 1) if lost is not None else 0.5
        start = [special.logit(min(max(share, 0.01), 0.99))] if with_p else []
        start = np.concatenate([start, self._start(won, WON)] + ([self._start(lost, LOST)] if lost else []))
        objective = self._objective(won, lost, with_p)
        rows = float(sum(counts.sum() for _, counts in self._data.values()))

        def per_row(theta: np.ndarray) -> tuple[float, np.ndarray]:
            # per row: a gradient in the thousands made L-BFGS-B's first step leave the bounds and stop (gamma)
            value, gradient = objective(theta)
            return value / rows, gradient / rows

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = optimize.minimize(per_row, start, jac=True, method="L-BFGS-B", bounds=[(-25, 25)] * len(start),
                                       options={"gtol": 1e-10})
        nll = float(result.fun) * rows
        return {"theta": result.x, "nll": nll, "aic": 2 * len(start) + 2 * nll,
                "won": won, "lost": lost, "with_p": with_p}

    def _fit_mixture(self) -> None:
        """Families by AIC (the time to win first, then the time to lose), the cure model against the non-cure
        fit, and the chosen fit's covariance from the curvature of the likelihood."""
        has_lost = self.n_lost_ > 0
        if self.shapes:
            won_families = (self.shapes["won"][0],)
            lost_families = (self.shapes["lost"][0],) if has_lost and "lost" in self.shapes else (None,)
        else:
            won_families, lost_families = self.families, (self.families if has_lost else (None,))
        first_lost = "lognormal" if has_lost and "lognormal" in lost_families else lost_families[0]
        fits = {(won, first_lost): self._fit_one(won, first_lost, self.cure) for won in won_families}
        best_won = min(fits.values(), key=lambda fit: fit["aic"])["won"]
        for lost_family in lost_families:
            if (best_won, lost_family) not in fits:
                fits[(best_won, lost_family)] = self._fit_one(best_won, lost_family, self.cure)
        self.candidates_ = {f"{won}/{lost}" if lost else won: fit["aic"] for (won, lost), fit in fits.items()}
        best = min(fits.values(), key=lambda f: f["aic"])
        self.model_ = "competing_risks" if has_lost else ("cure" if self.cure else "no_cure")
        if self.cure and not has_lost:
            no_cure = self._fit_one(best["won"], None, False)
            self.no_cure_aic_ = no_cure["aic"]
            if no_cure["aic"] < best["aic"]:
                best, self.model_ = no_cure, "no_cure"
        else:
            self.no_cure_aic_ = None
        self._best = best
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            gradient = self._objective(best["won"], best["lost"], best["with_p"])
            curvature = np.atleast_2d(optimize.approx_fprime(best["theta"], lambda t: gradient(t)[1], 1e-4))
            curvature = (curvature + curvature.T) / 2
        self.covariance_ = np.linalg.pinv(curvature)
        self.aic_ = best["aic"]
        self.mixture_p_ = float(special.expit(best["theta"][0])) if best["with_p"] else 1.0
        k_won = self._free(best["won"], "won")
        offset = 1 if best["with_p"] else 0
        self.won_family_, self.lost_family_ = best["won"], best["lost"]
        self.won_params_ = self._full(best["won"], best["theta"][offset:offset + k_won], "won")
        self.lost_params_ = self._full(best["lost"], best["theta"][offset + k_won:], "lost") if best["lost"] else None
        self.won_ = _frozen(self.won_family_, self.won_params_)
        self.lost_ = _frozen(self.lost_family_, self.lost_params_) if self.lost_family_ else None

    # ----- the won rate -----

    def _fit_aalen_johansen(self, t: np.ndarray, outcome: np.ndarray, rng: np.random.Generator) -> None:
        estimate = aalen_johansen(t, outcome)
        events = np.flatnonzero(np.isin(estimate["times"], t[outcome != OPEN]))
        last = events[-1]
        self.horizon_days_ = float(estimate["times"][last])
        self.cif_won_, self.cif_lost_ = float(estimate["won"][last, 0]), float(estimate["lost"][last, 0])
        self.open_at_horizon_ = float(estimate["open"][last, 0])
        self.tail_win_ = (self.tail_from or self).conditional_win_probability(self.horizon_days_)
        self.rate_ = self.cif_won_ + self.open_at_horizon_ * self.tail_win_
        times, time_index = np.unique(t, return_inverse=True)
        cells, rows = np.unique(time_index * 3 + outcome, return_counts=True)  # one cell per (time, outcome)
        weights = rng.poisson(rows[:, None].astype(float), size=(len(cells), self.n_bootstrap)).astype(float)
        replicate = aalen_johansen(times[cells // 3], cells % 3, weights)
        position = np.searchsorted(replicate["times"], self.horizon_days_)
        tail_draws = (self.tail_from or self).conditional_win_draws(self.horizon_days_, self.n_bootstrap, rng)
        self.rate_draws_ = np.clip(replicate["won"][position] + replicate["open"][position] * tail_draws, 0.0, 1.0)
        tail = (1 - self.confidence) / 2
        self.rate_interval_ = [float(np.quantile(self.rate_draws_, tail)), float(np.quantile(self.rate_draws_, 1 - tail))]
        n = self.n_
        clipped = np.clip(self.rate_draws_, 0.5 / (n + 1), 1 - 0.5 / (n + 1))
        binomial = 1 / math.sqrt((n + 1) * 0.25) if not 0 < self.rate_ < 1 else 1 / math.sqrt(n * self.rate_ * (1 - self.rate_))
        self.rate_logit_se_ = float(max(np.std(special.logit(clipped)), binomial))

    def shapes_(self) -> dict[str, tuple[str, np.ndarray]]:
        """The fitted families and parameters per outcome, to fix a group's families (``shapes``)."""
        shapes = {"won": (self.won_family_, self.won_params_)}
        if self.lost_family_:
            shapes["lost"] = (self.lost_family_, self.lost_params_)
        return shapes

    def params_(self, outcome: str) -> np.ndarray | None:
        """The fitted parameters of the time to ``outcome`` (θ₀ log scale, θ₁ log shape); None without that time."""
        return self.won_params_ if outcome == "won" else self.lost_params_

    def conditional_win_draws(self, age: float, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of ``conditional_win_probability(age)`` from the fit's uncertainty (normal approximation)."""
        theta = rng.multivariate_normal(self._best["theta"], self.covariance_, size=n, method="eigh", check_valid="ignore").T
        p = special.expit(theta[0]) if self._best["with_p"] else np.ones(n)
        draws = self._theta_draws_from(theta)
        distribution, args = _unfrozen(self.won_family_, draws["won"])
        won = p * distribution.sf(age, *args)
        if "lost" in draws:
            distribution, args = _unfrozen(self.lost_family_, draws["lost"])
            lost = (1 - p) * distribution.sf(age, *args)
        else:
            lost = 1 - p
        total = won + lost
        return np.divide(won, total, out=np.zeros(n), where=total > 0)

    def open_share(self, age: np.ndarray | float) -> np.ndarray | float:
        """The share of rows still open at ``age`` days (elementwise): p·S_won(age) + (1 − p)·S_lost(age), with
        S_lost = 1 for those that never win in a cure model."""
        lost = self.lost_.sf(age) if self.lost_ is not None else 1.0
        return self.mixture_p_ * self.won_.sf(age) + (1 - self.mixture_p_) * lost

    def conditional_win_probability(self, age: float) -> float:
        """The chance that a row still open at ``age`` days ends won (the forecast of an open deal)."""
        won, still_open = self.mixture_p_ * float(self.won_.sf(age)), float(self.open_share(age))
        return won / still_open if still_open > 0 else 0.0

    def conditional_remaining_days(self, age: float, q: float = 0.5, outcome: str = "won") -> float:
        """The ``q`` quantile of the days left until an open row of ``age`` days ends with ``outcome``, given it does."""
        frozen = self.won_ if outcome == "won" else self.lost_
        return float(frozen.isf((1 - q) * frozen.sf(age)) - age)

    # ----- outputs -----

    def won_distribution(self) -> dict:
        return scenario_distribution(self.won_family_, self.won_)

    def lost_distribution(self) -> dict | None:
        return scenario_distribution(self.lost_family_, self.lost_) if self.lost_ is not None else None

    def _theta_draws(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` joint draws (columns) of each outcome's full parameters, from the fit's normal approximation."""
        return self._theta_draws_from(rng.multivariate_normal(self._best["theta"], self.covariance_, size=n, method="eigh",
                                                              check_valid="ignore").T)

    def _theta_draws_from(self, draws: np.ndarray) -> dict[str, np.ndarray]:
        """Each outcome's full parameters (rows) from draws (columns) of the fitted vector."""
        offset = 1 if self._best["with_p"] else 0
        k_won = self._free(self.won_family_, "won")
        out = {"won": self._full(self.won_family_, draws[offset:offset + k_won], "won")}
        if self.lost_family_:
            out["lost"] = self._full(self.lost_family_, draws[offset + k_won:], "lost")
        return out

    def parameter_draws(self, n: int, rng: np.random.Generator) -> list[dict[str, dict]]:
        """``n`` joint draws of the time-to-win (and time-to-lose) distributions, in the scenario format."""
        draws = self._theta_draws(n, rng)
        families = {"won": self.won_family_, "lost": self.lost_family_}
        return [{outcome: _distribution_dict(families[outcome], theta[:, i]) for outcome, theta in draws.items()} for i in range(n)]

    def _quantile_interval(self, outcome: str, q: float) -> list[float]:
        """Interval of a quantile of the time to ``outcome``, from 400 seeded draws of the parameters; [0, the
        resolution] when every such event fell within the first resolution step (the data bound the time, no more)."""
        values, counts = self._data[WON if outcome == "won" else LOST]
        if counts.sum() and values.max() <= 0:
            return [0.0, self.resolution_days]
        theta = self._theta_draws(400, np.random.default_rng(self.seed))[outcome]
        distribution, args = _unfrozen(self.won_family_ if outcome == "won" else self.lost_family_, theta)
        with np.errstate(over="ignore", invalid="ignore"):  # a draw far in the tails may have no finite quantile
            values = distribution.ppf(q, *args)
            tail = (1 - self.confidence) / 2
            return [float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))]

    def _duration_dict(self, outcome: str) -> dict | None:
        frozen = self.won_ if outcome == "won" else self.lost_
        if frozen is None:
            return None
        return {"distribution": scenario_distribution(self.won_family_ if outcome == "won" else self.lost_family_, frozen),
                "median": float(frozen.median()), "median_interval": self._quantile_interval(outcome, 0.5),
                "p90": float(frozen.ppf(0.9)), "p90_interval": self._quantile_interval(outcome, 0.9),
                "n_events": self.n_won_ if outcome == "won" else self.n_lost_,
                "shape": "pooled" if outcome in self.fixed else "own"}

    def to_dict(self) -> dict:
        out = {
            "rate": self.rate_, "interval": self.rate_interval_,
            "aalen_johansen": {"horizon_days": self.horizon_days_, "won": self.cif_won_, "lost": self.cif_lost_,
                               "open": self.open_at_horizon_, "open_rows_win_chance": self.tail_win_},
            "rows": self.n_, "won": self.n_won_, "lost": self.n_lost_, "open": self.n_open_,
        }
        if self.tail_from is not None:
            return {**out, "times": "not fitted: the open rows' chance of winning is the pooled fit's"}
        p_se = math.sqrt(max(self.covariance_[0, 0], 0.0)) if self._best["with_p"] else 0.0
        logit_p = special.logit(self.mixture_p_) if self._best["with_p"] else math.inf
        z = _z(self.confidence)
        return {
            **out,
            "outcome_model": self.model_,
            "mixture": {"p_ever_won": self.mixture_p_,
                        "interval": [float(special.expit(logit_p - z * p_se)), float(special.expit(logit_p + z * p_se))] if self._best["with_p"] else [1.0, 1.0],
                        "aic": self.aic_, "aic_no_cure": self.no_cure_aic_, "aic_by_families": self.candidates_},
            "time_to_win": self._duration_dict("won"),
            "time_to_lose": self._duration_dict("lost"),
        }


def _distribution_dict(family: str, theta: np.ndarray) -> dict:
    """Unconstrained parameters (θ₀ = log scale or lognormal μ, θ₁ = log shape) in the scenario's format."""
    if family == "exponential":
        return {"dist": "exponential", "mean": float(math.exp(theta[0]))}
    if family == "lognormal":
        return {"dist": "lognormal", "mu": float(theta[0]), "sigma": float(math.exp(theta[1]))}
    return {"dist": family, "shape": float(math.exp(theta[1])), "scale": float(math.exp(theta[0]))}


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
    return {"dist": family, "shape": float(shape), "scale": float(scale)}


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
            fit = DurationFit(FINITE_MEAN_FAMILIES, resolution_days=1e-9, seed=self.seed).fit(amounts, np.ones(self.n_, dtype=bool))
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
    """Arrivals per month: counts ~ Poisson(exposure days × exp(a + b·x(month) + s[calendar month])), overdispersed.

    The growth term has three candidate shapes: none; a trend, x the month's index; and growth that has stopped,
    x the index up to a knot month and constant after it (segmented, "broken-stick" regression; Muggeo, *Stat. Med.*
    2003), such as an organisation's ramp-up. They are compared by QAICc, the small-sample AIC of the quasi-Poisson fit
    (Burnham & Anderson, *Model Selection and Multimodel Inference*, 2002, §2.5, §6.2): the log-likelihood divided by
    the dispersion ĉ (Pearson χ² over the residual degrees of freedom of the most flexible candidate, at least 1),
    the knot and ĉ counted as parameters. So growth is extrapolated only when the data hold it up to their last months beyond
    their noise: a ramp-up that ended, or a drift within the months' scatter, is not. The covariance is scaled by ĉ.

    Partial first and last months count by the days they cover. Seasonality needs every calendar month seen at
    least twice (24 months), a trend at least ``min_months_for_trend`` months (5: with fewer, QAICc's small-sample
    term rules out a trend's four parameters, ĉ included, so "none" stands alone), a knot at least one month of growth
    before it and two months at the level after it. The scenario's ``monthly_volume`` is the level (without
    seasonality) in the reference month, normally the month after the as-of date, and its seasonality multipliers
    average 1; its ``trend`` is the growth the chosen shape extrapolates (0 unless a trend).
    """

    def __init__(self, confidence: float = CONFIDENCE, min_months_for_trend: int = 5):
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
        self.has_seasonality_ = len(months) >= 24
        calendar = months.month.to_numpy() - 1
        seasonal = [(calendar == c).astype(float) for c in range(1, 12)] if self.has_seasonality_ else []
        index = np.arange(len(months), dtype=float)
        shapes: dict[str, float | None] = {"none": None}
        if len(months) >= self.min_months_for_trend and counts.sum() > 0:
            shapes["trend"] = math.inf
            shapes.update({str(months[k]): float(k) for k in range(1, len(months) - 2)})
        fits = {}
        for name, knot in shapes.items():
            growth = [] if knot is None else [np.minimum(index, knot) - np.minimum(index, knot).mean()]
            design = np.column_stack([np.ones(len(months)), *growth, *seasonal])
            coef, cov = _poisson_regression(design, counts, np.log(exposure))
            mean = exposure * np.exp(design @ coef)
            log_likelihood = float(counts @ np.log(np.maximum(mean, 1e-300)) - mean.sum())
            parameters = design.shape[1] + (name not in ("none", "trend"))  # a knot is a parameter too
            fits[name] = {"knot": knot, "coef": coef, "cov": cov, "log_likelihood": log_likelihood, "parameters": parameters,
                          "pearson": float(((counts - mean) ** 2 / np.maximum(mean, 1e-300)).sum()),
                          "centre": 0.0 if knot is None else float(np.minimum(index, knot).mean())}
        flexible = max(fits.values(), key=lambda fit: (fit["parameters"], fit["log_likelihood"]))
        residual_df = len(months) - flexible["parameters"]
        self.dispersion_ = max(flexible["pearson"] / residual_df, 1.0) if residual_df > 0 else 1.0
        qaic = {name: _qaicc(fit["log_likelihood"], self.dispersion_, fit["parameters"] + 1, len(months)) for name, fit in fits.items()}
        self.growth_ = min(qaic, key=qaic.get)
        self.growth_qaic_ = qaic
        chosen = fits[self.growth_]
        self._knot, self._centre = chosen["knot"], chosen["centre"]
        self.coef_, self.cov_ = chosen["coef"], chosen["cov"] * self.dispersion_
        seasonal_log = np.zeros(12)
        if self.has_seasonality_:
            seasonal_log[1:] = self.coef_[-11:]
        multipliers = np.exp(seasonal_log)
        self._mean_season = multipliers.mean()
        self.seasonality_ = (multipliers / self._mean_season).tolist()
        z = _z(self.confidence)
        slope = self.coef_[1] if self.growth_ == "trend" else 0.0
        slope_se = math.sqrt(self.cov_[1, 1]) if self.growth_ == "trend" else 0.0
        self.trend_ = _expm1(slope)
        self.trend_interval_ = [_expm1(slope - z * slope_se), _expm1(slope + z * slope_se)] if self.growth_ == "trend" else None
        self.n_ = int(counts.sum())
        self.months_ = len(months)
        return self

    def growth_note(self) -> str:
        """The chosen growth shape in words."""
        if self.growth_ == "none":
            return "no growth beyond the months' scatter"
        if self.growth_ == "trend":
            return f"a trend of {self.trend_:+.1%} a month, extrapolated"
        return f"growth until {self.growth_}, level since: not extrapolated"

    def _level_vector(self, month: pd.Period) -> np.ndarray:
        vector = np.zeros(len(self.coef_))
        vector[0] = 1.0
        if self._knot is not None:
            vector[1] = min((month - self.start_month_).n, self._knot) - self._centre
        return vector

    def volume_draws(self, month: pd.Period, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of ``monthly_volume(month)`` from the regression's normal approximation (log scale)."""
        vector = self._level_vector(month)
        se = math.sqrt(max(float(vector @ self.cov_ @ vector), 0.0))
        log_rate = float(vector @ self.coef_) + se * rng.standard_normal(n)
        return self._mean_season * DAYS_PER_MONTH * np.exp(np.minimum(log_rate, _MAX_EXPONENT - 10))

    def monthly_volume(self, month: pd.Period) -> tuple[float, list[float]]:
        """Leads in a month of average length at ``month`` (without seasonality), with its interval."""
        vector = self._level_vector(month)
        log_rate = float(vector @ self.coef_)
        se = math.sqrt(max(float(vector @ self.cov_ @ vector), 0.0))
        z = _z(self.confidence)
        scale = self._mean_season * DAYS_PER_MONTH
        volume = scale * _exp(log_rate)
        if not math.isfinite(volume):
            raise CalibrationError("arrivals", [f"the fitted trend ({self.trend_:+.0%} a month) extrapolated to {month} "
                                               "gives no finite volume; calibrate with an as-of date nearer the data"])
        return volume, [scale * _exp(log_rate - z * se), scale * _exp(log_rate + z * se)]


def _qaicc(log_likelihood: float, dispersion: float, parameters: int, n: int) -> float:
    """QAICc (Burnham & Anderson 2002, §2.5 and §6.2): −2 log L / ĉ + 2K, plus the small-sample term
    2K(K + 1)/(n − K − 1); K counts the dispersion too."""
    small_sample = 2 * parameters * (parameters + 1) / (n - parameters - 1) if n - parameters - 1 > 0 else math.inf
    return -2 * log_likelihood / dispersion + 2 * parameters + small_sample


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
