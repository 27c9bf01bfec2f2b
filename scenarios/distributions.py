"""Probability distributions a scenario can name, each drawable by inverse CDF.

Every distribution maps uniforms to values (``ppf``), so the engine draws uniforms once per lead and stream
and turns them into durations or amounts: two scenarios that share a seed then share random numbers
(common random numbers), whatever their parameters. ``cdf`` gives what conditional draws need: the value of a
duration known to exceed ``a`` is ``remaining_ppf(u, a)``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

import numpy as np
from pydantic import Field, PositiveFloat, NonNegativeFloat, field_validator
from scipy import special

from scenarios.base import Frozen


class Exponential(Frozen):
    """Exponential with the given mean."""

    dist: Literal["exponential"]
    mean: PositiveFloat

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return -self.mean * np.log1p(-u)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return -np.expm1(-np.asarray(x, dtype=float) / self.mean)

    def expected(self) -> float:
        return self.mean


class Gamma(Frozen):
    """Gamma with shape k and scale θ (mean kθ)."""

    dist: Literal["gamma"]
    shape: PositiveFloat
    scale: PositiveFloat

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return special.gammaincinv(self.shape, u) * self.scale

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return special.gammainc(self.shape, np.maximum(np.asarray(x, dtype=float), 0.0) / self.scale)

    def expected(self) -> float:
        return self.shape * self.scale


class Lognormal(Frozen):
    """Lognormal whose logarithm is normal with mean ``mu`` and standard deviation ``sigma``."""

    dist: Literal["lognormal"]
    mu: float
    sigma: PositiveFloat

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return np.exp(self.mu + self.sigma * special.ndtri(u))

    def cdf(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return special.ndtr((np.log(np.maximum(np.asarray(x, dtype=float), 0.0)) - self.mu) / self.sigma)

    def expected(self) -> float:
        return float(np.exp(self.mu + self.sigma**2 / 2))


class Weibull(Frozen):
    """Weibull with shape k and scale λ."""

    dist: Literal["weibull"]
    shape: PositiveFloat
    scale: PositiveFloat

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return self.scale * (-np.log1p(-u)) ** (1.0 / self.shape)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return -np.expm1(-((np.maximum(np.asarray(x, dtype=float), 0.0) / self.scale) ** self.shape))

    def expected(self) -> float:
        from math import gamma

        return self.scale * gamma(1.0 + 1.0 / self.shape)


class Loglogistic(Frozen):
    """Log-logistic (Fisk) with shape c and scale α (the median): P(X ≤ x) = 1 / (1 + (x/α)^−c)."""

    dist: Literal["loglogistic"]
    shape: PositiveFloat
    scale: PositiveFloat

    def ppf(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        return self.scale * (u / (1.0 - u)) ** (1.0 / self.shape)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return special.expit(self.shape * (np.log(np.maximum(np.asarray(x, dtype=float), 1e-300)) - np.log(self.scale)))

    def expected(self) -> float:
        """The mean, infinite for a shape of 1 or less (a tail too heavy for one)."""
        if self.shape <= 1:
            return float("inf")
        return float(self.scale * (np.pi / self.shape) / np.sin(np.pi / self.shape))


class Empirical(Frozen):
    """Resampling of observed values (each equally likely)."""

    dist: Literal["empirical"]
    values: list[NonNegativeFloat] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _sorted(cls, values: list[float]) -> list[float]:
        return sorted(values)

    def ppf(self, u: np.ndarray) -> np.ndarray:
        values = np.asarray(self.values)
        index = np.minimum((np.asarray(u) * len(values)).astype(np.int64), len(values) - 1)
        return values[index]

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.values), np.asarray(x, dtype=float), side="right") / len(self.values)

    def expected(self) -> float:
        return float(np.mean(self.values))


class Fixed(Frozen):
    """Always the same value."""

    dist: Literal["fixed"]
    value: NonNegativeFloat

    def ppf(self, u: np.ndarray) -> np.ndarray:
        return np.full(np.shape(u), self.value, dtype=float)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=float) >= self.value).astype(float)

    def expected(self) -> float:
        return self.value


def remaining_ppf(distribution: "Distribution", u: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Durations drawn given that they exceed ``age`` (by inverse CDF of the truncated distribution), minus ``age``:
    the time still to run. Where the distribution has no mass beyond ``age`` the remaining time is 0."""
    age = np.asarray(age, dtype=float)
    survived = distribution.cdf(age)
    total = distribution.ppf(np.minimum(survived + np.asarray(u) * (1.0 - survived), np.nextafter(1.0, 0.0)))
    return np.maximum(total - age, 0.0)


Distribution = Annotated[
    Union[Exponential, Gamma, Lognormal, Weibull, Loglogistic, Empirical, Fixed], Field(discriminator="dist")
]
