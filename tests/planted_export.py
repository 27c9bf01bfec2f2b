"""A CRM export with planted win/loss effects, for tests and the win/loss benchmark.

Deals are won with a logistic model whose odds ratios are known (``PLANTED``): product B doubles the odds against
product A, C halves them, the partner channel multiplies them by 1.6. Region, industry, colour and employees have no
effect (``NULL_ATTRIBUTES``). ``days_in_stage`` is recorded at the close: a share of the cycle, which is longer for
losses (leakage). With ``weak_rep``, rep ``rep_01`` carries 15% of the deals at a third of the odds, and ``rep_20``
has 8 closed deals of which 2 are won at the organisation's true rate: unlucky, not weak.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: (attribute, level) → planted odds ratio against the reference level (A, direct).
PLANTED = {("product", "B"): 2.0, ("product", "C"): 0.5, ("channel", "partner"): 1.6}
NULL_ATTRIBUTES = ("region", "industry", "colour", "employees")
PRODUCTS = {"A": 0.5, "B": 0.3, "C": 0.2}
CHANNELS = {"direct": 0.6, "partner": 0.4}
BASE_LOG_ODDS = -0.2
WEAK_REP_ODDS = 1 / 3
START = pd.Timestamp("2025-01-01")

MAPPING = """
description: planted win/loss effects
entry: opportunity
columns:
  id: deal_id
  created_at: created
  closed_at: closed
  outcome: status
  amount: amount
  owner: rep
  territory: region
outcome_values: {Won: won, Lost: lost, Open: open}
date_format: "%Y-%m-%d"
lost_reason: lost_reason
attributes:
  product: {column: product}
  channel: {column: channel}
  industry: {column: industry}
  colour: {column: colour}
  employees: {column: employees}
  days_in_stage: {column: days_in_stage}
"""


def planted_export(seed: int, n: int = 2000, open_share: float = 0.1, weak_rep: bool = False) -> pd.DataFrame:
    """``n`` deals over 2025 with the planted effects, ``open_share`` of them still open at the end."""
    rng = np.random.default_rng(seed)
    product = rng.choice(list(PRODUCTS), n, p=list(PRODUCTS.values()))
    channel = rng.choice(list(CHANNELS), n, p=list(CHANNELS.values()))
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.25, 0.2, 0.15])
    industry = rng.choice(["retail", "health", "finance", "tech", "energy"], n)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    employees = np.round(rng.lognormal(5, 1.2, n)).astype(int)
    log_odds = BASE_LOG_ODDS + np.zeros(n)
    for (attribute, level), ratio in PLANTED.items():
        log_odds += np.log(ratio) * ({"product": product, "channel": channel}[attribute] == level)
    reps = np.array([f"rep_{i:02d}" for i in range(1, 20)])
    rep = rng.choice(reps, n)
    if weak_rep:
        rep = np.where(rng.random(n) < 0.15, "rep_01", rep)
        log_odds += np.log(WEAK_REP_ODDS) * (rep == "rep_01")
    won = rng.random(n) < 1 / (1 + np.exp(-log_odds))
    created = START + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    cycle = np.where(won, rng.gamma(4.0, 10.0, n), rng.gamma(4.0, 17.5, n)).round() + 1
    is_open = rng.random(n) < open_share
    status = np.where(is_open, "Open", np.where(won, "Won", "Lost"))
    closed = (created + pd.to_timedelta(cycle, unit="D")).strftime("%Y-%m-%d").to_numpy(dtype=object)
    closed[is_open] = ""
    days_in_stage = np.round(cycle * rng.uniform(0.4, 1.0, n)).astype(int)
    frame = pd.DataFrame({
        "deal_id": [f"D{seed}-{i:05d}" for i in range(n)], "created": created.strftime("%Y-%m-%d"), "closed": closed,
        "status": status, "amount": np.where(won & ~is_open, rng.integers(1_000, 50_000, n), 0), "rep": rep,
        "region": region, "product": product, "channel": channel, "industry": industry, "colour": colour,
        "employees": employees, "days_in_stage": days_in_stage,
        "lost_reason": np.where(status == "Lost", rng.choice(["price", "competitor", "no decision"], n), ""),
    })
    if weak_rep:  # rep_20: 8 closed deals, 2 won, a low observed rate from few deals
        unlucky = frame.index[:8]
        frame.loc[unlucky, "rep"] = "rep_20"
        frame.loc[unlucky, "status"] = ["Won", "Won"] + ["Lost"] * 6
        frame.loc[unlucky, "closed"] = (created[:8] + pd.Timedelta(days=30)).strftime("%Y-%m-%d")
        frame.loc[unlucky, "amount"] = [5_000, 5_000] + [0] * 6
        frame.loc[unlucky, "lost_reason"] = ["", ""] + ["price"] * 6
    return frame
