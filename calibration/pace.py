"""How much faster or slower deals closed, month by month, than their fitted times say: the closing pace.

Each open deal has, under the fitted outcome model, a hazard of closing (won or lost) at its age; summed over the
deals open in a calendar month, the cumulative hazard gained there is the number of closes E the model expects in
it (the compensator of the closing process). Under the model, the observed count O is Poisson around E; a month
where the whole team closes faster or slower multiplies E by that month's pace g. With a gamma pace of mean 1 and
variance v, O is negative binomial with mean E and variance E + v·E², so v is fitted by maximum likelihood over
the months (``ClosingPaceFit``). The scenario's ``ClosingPace.month_sd`` is the log standard deviation of the
lognormal pace of the same variance, sqrt(log(1 + v)); its uncertainty is the posterior over a grid of month_sd
in [0, ``MAX_MONTH_SD``] with a flat prior, whose draws join the calibration's parameter draws.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from calibration.estimators import CONFIDENCE, OutcomeFit, _quantile_index
from scenarios.model import MAX_MONTH_SD

#: Months of history the pace is measured on: the most recent ones, which a forecast follows.
PACE_MONTHS = 24
#: Fewer months with closes expected than this, and the pace is not estimated.
MIN_MONTHS = 3
#: Values of month_sd on which the likelihood is evaluated.
GRID = np.linspace(0.0, MAX_MONTH_SD, 401)


class ClosingPaceFit:
    """Observed against expected closes per calendar month, and the spread of the pace that explains the excess."""

    def __init__(self, confidence: float = CONFIDENCE):
        self.confidence = confidence

    def fit(self, start: pd.Series, days: np.ndarray, closed: np.ndarray, model: OutcomeFit, known_until: pd.Timestamp) -> "ClosingPaceFit":
        """``start``: when each row entered the closing stage; ``days``: to its close (``closed``) or to
        ``known_until``; ``model``: the pooled outcome fit of the stage."""
        days = np.asarray(days, dtype=float)
        origin = known_until.normalize()
        begin = ((start - origin) / pd.Timedelta(days=1)).to_numpy(dtype=float)  # days before the end of the data
        end = begin + days
        grid = np.arange(0.0, math.ceil(days.max(initial=0.0)) + 2.0)
        hazard = -np.log(np.clip(model.open_share(grid), 1e-300, None))
        # from the first month with a close: before it, the export did not record closes yet
        first_close = (start.iloc[np.flatnonzero(closed)] + pd.to_timedelta(days[closed], unit="D")).min()
        first = max(first_close.to_period("M"), known_until.to_period("M") - (PACE_MONTHS - 1))
        months = pd.period_range(first, (known_until - pd.Timedelta(microseconds=1)).to_period("M"), freq="M")
        rows = []
        for month in months:
            low = (month.start_time - origin) / pd.Timedelta(days=1)
            high = min((month + 1).start_time - origin, known_until - origin) / pd.Timedelta(days=1)
            at_start, at_end = np.clip(low - begin, 0.0, days), np.clip(high - begin, 0.0, days)
            expected = float(np.sum(np.interp(at_end, grid, hazard) - np.interp(at_start, grid, hazard)))
            observed = int(np.sum(closed & (end >= low) & (end < high)))
            rows.append({"month": str(month), "observed": observed, "expected": expected})
        self.months_ = rows
        usable = [row for row in rows if row["expected"] > 0]
        if len(usable) < MIN_MONTHS:
            self.month_sd_, self.interval_, self.posterior_ = None, None, None
            return self
        log_likelihood = _log_likelihood(np.array([row["observed"] for row in usable], dtype=float),
                                         np.array([row["expected"] for row in usable]))
        self.month_sd_ = float(GRID[np.argmax(log_likelihood)])
        posterior = np.exp(log_likelihood - log_likelihood.max())
        self.posterior_ = posterior / posterior.sum()
        tail = (1 - self.confidence) / 2
        self.interval_ = [float(GRID[_quantile_index(self.posterior_, q)]) for q in (tail, 1 - tail)]
        return self

    def draws(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``n`` draws of month_sd from its posterior (None where the pace was not estimated)."""
        return None if self.posterior_ is None else rng.choice(GRID, size=n, p=self.posterior_)

    def to_dict(self) -> dict:
        return {
            "month_sd": self.month_sd_, "interval": self.interval_,
            "months": [{**row, "pace": row["observed"] / row["expected"] if row["expected"] > 0 else None} for row in self.months_],
            "meaning": "closes per calendar month against those the fitted times expect of the deals open then; "
                       "month_sd: the spread of a month's log pace beyond chance (maximum likelihood, and its interval)",
        }


def _log_likelihood(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per value of ``GRID``: the log-likelihood of the months' closes, negative binomial with mean E and variance
    E + v·E² for the pace variance v = exp(month_sd²) − 1 (Poisson at 0)."""
    variance = np.expm1(GRID[1:] ** 2)[:, None]
    size = 1.0 / variance
    paced = stats.nbinom.logpmf(observed, size, size / (size + expected)).sum(axis=1)
    return np.r_[stats.poisson.logpmf(observed, expected).sum(), paced]
