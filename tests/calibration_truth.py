"""A small generator of CRM exports with known truth, independent of the engine: deals per segment, each won
with a known probability after a lognormal time to win, else lost after a lognormal time to lose, observed at an
as-of date (deals not yet closed are open). Optionally a cure funnel: a share of leads never converts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calibration.calibrate import fit_groups
from calibration.estimators import LOST, OPEN, WON, OutcomeFit

AS_OF = pd.Timestamp("2027-06-30")
CODES = {"won": WON, "lost": LOST, "open": OPEN}


@dataclass(frozen=True)
class Segment:
    """Truth of one segment: deals, won rate, medians (days) and log-sd of the times to win and to lose."""

    deals: int
    won_rate: float
    win_median: float
    lose_median: float
    sigma: float = 0.6

    @property
    def window_days(self) -> float:
        """Deals open over three mean closing times before the as-of date: about a third are still open then."""
        mean = np.exp(self.sigma**2 / 2) * (self.won_rate * self.win_median + (1 - self.won_rate) * self.lose_median)
        return 3 * mean


#: The issue's shape: three segments, cycle medians 30 / 75 / 150 days, a small enterprise segment.
SEGMENTS = {
    "smb": Segment(3000, 0.30, 30, 15),
    "mid_market": Segment(1200, 0.22, 75, 40),
    "enterprise": Segment(150, 0.14, 150, 80),
}


def deals(seed: int, segments: dict[str, Segment] = SEGMENTS) -> pd.DataFrame:
    """One row per deal: segment, created day (days before the as-of date, negative), outcome and duration as
    observed at the as-of date (``open`` rows: their age), and the true full duration and outcome."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, truth in segments.items():
        n = truth.deals
        created = -rng.uniform(0, truth.window_days, n)
        won = rng.random(n) < truth.won_rate
        median = np.where(won, truth.win_median, truth.lose_median)
        full = median * np.exp(truth.sigma * rng.standard_normal(n))
        closed = created + full <= 0
        frames.append(pd.DataFrame({
            "segment": name, "created_day": created, "true_outcome": np.where(won, "won", "lost"), "true_days": full,
            "outcome": np.where(closed, np.where(won, "won", "lost"), "open"), "days": np.where(closed, full, -created),
        }))
    return pd.concat(frames, ignore_index=True)


def export(seed: int, segments: dict[str, Segment] = SEGMENTS, amounts: bool = True) -> pd.DataFrame:
    """The deals as a Maven-style export (``maven_sales_pipeline`` mapping): ids, dates, stage, close value."""
    table = deals(seed, segments)
    rng = np.random.default_rng(seed + 1)
    created = AS_OF + pd.to_timedelta(table["created_day"], unit="D")
    closed = created + pd.to_timedelta(table["days"], unit="D")
    is_open = table["outcome"].eq("open")
    value = np.round(rng.lognormal(9, 0.7, len(table)), 2)
    return pd.DataFrame({
        "opportunity_id": [f"O{i:06d}" for i in range(len(table))],
        "sales_agent": rng.choice(["Ann", "Bo", "Cy"], len(table)),
        "product": table["segment"],
        "account": "acme",
        "deal_stage": table["outcome"].map({"won": "Won", "lost": "Lost", "open": "Engaging"}),
        "engage_date": created.dt.strftime("%Y-%m-%d"),
        "close_date": closed.dt.strftime("%Y-%m-%d").where(~is_open, ""),
        "close_value": np.where(table["outcome"].eq("won"), value, 0.0) if amounts else "",
    })


def cure_funnel(seed: int, leads: int = 8000, converting: float = 0.15, median: float = 40, sigma: float = 0.8,
                window: float = 365) -> tuple[np.ndarray, np.ndarray]:
    """Leads arriving over ``window`` days; a share ``converting`` converts after a lognormal time, the rest never
    (no loss is recorded). Returns (days observed, converted) at the as-of date."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(0, window, leads)
    converts = rng.random(leads) < converting
    time = median * np.exp(sigma * rng.standard_normal(leads))
    won = converts & (time <= age)
    return np.where(won, time, age), won


def study(seeds: range) -> pd.DataFrame:
    """Per segment and seed: the pooled won rate with its interval, the naive won share among closed deals, the
    fitted medians of the times to win and to lose."""
    rows = []
    for seed in seeds:
        table = deals(seed)
        durations, outcome, groups = table["days"].to_numpy(), table["outcome"].map(CODES).to_numpy(), table["segment"].to_numpy()
        pooled = OutcomeFit(("lognormal",), resolution_days=1 / 24, seed=seed).fit(durations, outcome)
        rates, fits, _, _ = fit_groups(durations, outcome, groups, pooled, resolution_days=1 / 24, seed=seed)
        for name in SEGMENTS:
            closed = table[(table["segment"] == name) & table["outcome"].ne("open")]
            rows.append({"segment": name, "rate": rates.by_group_.at[name, "rate"], "lower": rates.by_group_.at[name, "lower"],
                         "upper": rates.by_group_.at[name, "upper"], "naive": closed["outcome"].eq("won").mean(),
                         "win_median": fits[name]["time_to_win"]["median"], "lose_median": fits[name]["time_to_lose"]["median"]})
    return pd.DataFrame(rows)
