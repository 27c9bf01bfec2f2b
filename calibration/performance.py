"""Rep and territory performance over time, against the organisation, with shrunk estimates and funnel limits.

Per unit (an owner or a territory) and period (month or quarter of the close; ``all`` for the whole window):
closed deals, won, won rate, bookings, and per closed deal the mean cycle days, bookings and (where the export has
it) response hours, each against the organisation in the same period.

- **Shrunk won rate**: an empirical-Bayes beta-binomial. The units' won counts are fitted (maximum likelihood,
  scipy) by a Beta(α, β) prior whose strength α+β says how much units truly differ; each unit's rate is its
  posterior mean (won+α)/(n+α+β) with a 95% posterior interval. A unit with 12 deals is pulled most of the way to
  the organisation, one with 500 hardly at all; when units differ no more than noise, the strength is large and
  every unit sits at the organisation's rate.
- **Funnel-plot limits**: the won rate a unit with its number of closed deals would show, 95% and 99.8% of the
  time, if it won at the organisation's rate (binomial quantiles). A unit outside the 99.8% limits is ``below``
  or ``above``; outside the 95% limits only, ``low`` or ``high``.
- **Means** (cycle days, bookings per closed deal, response hours): shrunk by a normal–normal empirical Bayes
  (the between-unit variance by the method of moments), with funnel limits org ± z·sd/√n and the same flags.
- **Trend**: each unit's standing against the rest of the organisation (odds ratio of winning) in the last period
  against the earlier periods (Woolf's z-test of the change, Benjamini–Hochberg across units of a kind):
  ``slipped`` or ``improved`` beyond noise. The last period may be partial (the as-of date).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

#: Funnel-plot limit levels: warning (95%) and alarm (99.8%).
WARNING, ALARM = 0.95, 0.998
#: Bounds on the prior strength α+β (a strength at the upper bound means no variation beyond noise).
MIN_STRENGTH, MAX_STRENGTH = 0.1, 1e6
ALPHA = 0.05
ALL = "all"
#: Figures compared as means per closed deal: days created → closed, bookings (0 for a loss), response hours.
MEANS = ("cycle_days", "bookings_per_deal", "response_hours")


def beta_binomial_prior(won: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """(mean, strength) of the Beta prior that maximises the beta-binomial likelihood of the units' won counts."""
    won, n = np.asarray(won, float), np.asarray(n, float)
    keep = n > 0
    won, n = won[keep], n[keep]
    pooled = won.sum() / n.sum()
    if len(n) < 2 or pooled in (0.0, 1.0):
        return float(pooled), MAX_STRENGTH

    def negative_log_likelihood(theta: np.ndarray) -> float:
        mean, strength = special.expit(theta[0]), np.exp(theta[1])
        a, b = mean * strength, (1 - mean) * strength
        return -float(np.sum(special.betaln(won + a, n - won + b) - special.betaln(a, b)))

    start = np.array([special.logit(pooled), np.log(100.0)])
    bounds = [(-20, 20), (np.log(MIN_STRENGTH), np.log(MAX_STRENGTH))]
    fit = optimize.minimize(negative_log_likelihood, start, method="L-BFGS-B", bounds=bounds)
    return float(special.expit(fit.x[0])), float(np.exp(fit.x[1]))


def funnel_limits(n: np.ndarray, rate: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The won rates inside which a unit with ``n`` closed deals at the organisation's ``rate`` falls with
    probability ``level`` (binomial quantiles divided by n; NaN where n is 0)."""
    n = np.asarray(n, float)
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = stats.binom.ppf(tail, n, rate) / n
        high = stats.binom.ppf(1 - tail, n, rate) / n
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def unit_figures(deals: pd.DataFrame, unit: str, period: str | None) -> pd.DataFrame:
    """Closed deals, won, bookings, and the mean, variance and count of each of ``MEANS`` per unit (and period of
    the close)."""
    keys = [unit] if period is None else [unit, "period"]
    closed = deals[deals["outcome"].isin(("won", "lost"))].assign(won=lambda f: f["outcome"].eq("won"))
    closed = closed.assign(bookings_per_deal=closed["amount"].where(closed["won"], 0.0))
    grouped = closed.groupby(keys, sort=True)
    figures = grouped.agg(deals=("won", "size"), won=("won", "sum"), bookings=("bookings_per_deal", "sum"))
    for metric in MEANS:
        figures[f"{metric}_mean"] = grouped[metric].mean()
        figures[f"{metric}_var"] = grouped[metric].var()
        figures[f"{metric}_n"] = grouped[metric].count()
    figures = figures.reset_index().rename(columns={unit: "unit"})
    if period is None:
        opened = deals[deals["outcome"].eq("open")].groupby(unit).size()
        figures["open"] = figures["unit"].map(opened).fillna(0).astype(int)
        figures.insert(1, "period", ALL)
    figures["won"] = figures["won"].astype(int)
    figures["won_rate"] = figures["won"] / figures["deals"]
    return figures


def _flag(observed: pd.Series, limits: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """below / above outside the 99.8% limits, low / high outside the 95% ones only, else within (NaN: within)."""
    (low95, high95), (low998, high998) = limits["95"], limits["998"]
    return np.select([observed < low998, observed > high998, observed < low95, observed > high95],
                     ["below", "above", "low", "high"], "within")


def compare_rates(group: pd.DataFrame) -> pd.DataFrame:
    """The won rate of each unit against the organisation in one period: organisation's rate, beta-binomial shrunk
    rate and its 95% interval, binomial funnel limits and flag."""
    won, n = group["won"].to_numpy(float), group["deals"].to_numpy(float)
    rate = won.sum() / n.sum()
    mean, strength = beta_binomial_prior(won, n)
    a, b = mean * strength, (1 - mean) * strength
    group = group.assign(org_rate=rate, prior_strength=strength, shrunk_rate=(won + a) / (n + a + b),
                         shrunk_low=stats.beta.ppf(0.025, won + a, n - won + b),
                         shrunk_high=stats.beta.ppf(0.975, won + a, n - won + b))
    limits = {name: funnel_limits(n, rate, level) for level, name in ((WARNING, "95"), (ALARM, "998"))}
    for name, (low, high) in limits.items():
        group[f"limit{name}_low"], group[f"limit{name}_high"] = low, high
    group["flag"] = _flag(group["won_rate"], limits)
    return group


def compare_means(group: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A mean figure (cycle days, bookings per closed deal, response hours) of each unit against the organisation
    in one period: the organisation's mean, a normal–normal empirical-Bayes shrunk mean (between-unit variance by
    the method of moments), funnel limits from the normal approximation and flag."""
    mean, var, n = (group[f"{metric}_{part}"].to_numpy(float) for part in ("mean", "var", "n"))
    seen = n > 0
    if not seen.any():
        return group
    org = float(np.sum(mean[seen] * n[seen]) / n[seen].sum())
    within = np.nansum((n[seen] - 1) * var[seen]) / max(float(np.sum(n[seen] - 1)), 1.0)
    total = (within * max(float(np.sum(n[seen] - 1)), 0.0) + np.sum(n[seen] * (mean[seen] - org) ** 2)) / max(n[seen].sum() - 1, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = within / n
        between = max(0.0, float(np.var(mean[seen], ddof=1)) - float(np.mean(noise[seen]))) if seen.sum() > 1 else 0.0
        weight = np.where(seen, between / (between + noise), np.nan)
        limits = {}
        for level, name in ((WARNING, "95"), (ALARM, "998")):
            half = stats.norm.ppf(1 - (1 - level) / 2) * np.sqrt(total / n)
            limits[name] = (np.where(seen, org - half, np.nan), np.where(seen, org + half, np.nan))
    group = group.assign(**{f"{metric}_org": org, f"{metric}_shrunk": org + weight * (mean - org),
                            f"{metric}_limit998_low": limits["998"][0], f"{metric}_limit998_high": limits["998"][1]})
    group[f"{metric}_flag"] = np.where(seen, _flag(group[f"{metric}_mean"], limits), "")
    return group


def compare(figures: pd.DataFrame) -> pd.DataFrame:
    """Each unit against the organisation in the same period: the won rate (``compare_rates``) and each of
    ``MEANS`` (``compare_means``)."""
    parts = []
    for _, group in figures.groupby("period", sort=False):
        group = compare_rates(group)
        for metric in MEANS:
            group = compare_means(group, metric)
        parts.append(group)
    return pd.concat(parts, ignore_index=True)


def trends(figures: pd.DataFrame) -> pd.DataFrame:
    """Each unit's last period against its earlier ones, relative to the rest of the organisation: the change in
    the log odds ratio of winning (unit against the rest) from before to the last period, its Woolf z-test,
    Benjamini–Hochberg across units, and the verdict. Relative, so that a shift every unit shares (closes early in
    an export are the quick ones, mostly wins) is not read as every unit slipping."""
    from statsmodels.stats.multitest import multipletests

    periods = sorted(figures["period"].unique())
    if len(periods) < 2:
        return pd.DataFrame()
    last = figures["period"] == periods[-1]
    cells = figures.assign(lost=figures["deals"] - figures["won"], last=last)
    own = cells.groupby(["unit", "last"])[["won", "lost"]].sum().unstack("last", fill_value=0)
    total = cells.groupby("last")[["won", "lost"]].sum()
    rows = []
    for unit, counts in own.iterrows():
        if counts[("won", True)] + counts[("lost", True)] == 0 or counts[("won", False)] + counts[("lost", False)] == 0:
            continue
        log_ratio, variance = [], 0.0
        for when in (False, True):
            table = np.array([counts[("won", when)], counts[("lost", when)],
                              total.loc[when, "won"] - counts[("won", when)], total.loc[when, "lost"] - counts[("lost", when)]], float)
            table = table + 0.5 if (table == 0).any() else table  # Haldane's correction for an empty cell
            log_ratio.append(np.log(table[0] * table[3] / (table[1] * table[2])))
            variance += float(np.sum(1 / table))
        z = (log_ratio[1] - log_ratio[0]) / np.sqrt(variance)
        n_now, n_before = counts[("won", True)] + counts[("lost", True)], counts[("won", False)] + counts[("lost", False)]
        rows.append({"unit": unit, "period": periods[-1], "deals": int(n_now), "won_rate": counts[("won", True)] / n_now,
                     "earlier_deals": int(n_before), "earlier_won_rate": counts[("won", False)] / n_before,
                     "org_won_rate": total.loc[True, "won"] / total.loc[True].sum(),
                     "earlier_org_won_rate": total.loc[False, "won"] / total.loc[False].sum(),
                     "odds_ratio_change": float(np.exp(log_ratio[1] - log_ratio[0])), "p": float(2 * stats.norm.sf(abs(z)))})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["p_adjusted"] = multipletests(table["p"], method="fdr_bh")[1]
    table["trend"] = np.where(table["p_adjusted"] >= ALPHA, "steady",
                              np.where(table["odds_ratio_change"] < 1, "slipped", "improved"))
    return table


def performance(deals: pd.DataFrame, units: dict[str, str], period: str = "quarter") -> tuple[pd.DataFrame, pd.DataFrame]:
    """performance.csv (kind, unit, period, figures, shrunk rate, limits, flag) and the trends, for each kind of unit
    in ``units`` (kind → column of ``deals``). ``deals`` has outcome, amount, cycle_days, response_hours, closed_at."""
    frequency = {"month": "M", "quarter": "Q"}[period]
    dated = deals["closed_at"].notna().any()
    deals = deals.assign(period=deals["closed_at"].dt.to_period(frequency).astype(str) if dated else ALL)
    tables, trend_tables = [], []
    for kind, column in units.items():
        whole = compare(unit_figures(deals, column, None))
        by_period = compare(unit_figures(deals, column, "period")) if dated else whole.iloc[0:0]
        table = pd.concat([whole, by_period], ignore_index=True)
        table.insert(0, "kind", kind)
        tables.append(table)
        if dated:
            found = trends(by_period)
            if not found.empty:
                found.insert(0, "kind", kind)
                trend_tables.append(found)
    columns = ["kind", "unit", "period", "deals", "won", "open", "won_rate", "org_rate", "shrunk_rate", "shrunk_low",
               "shrunk_high", "prior_strength", "limit95_low", "limit95_high", "limit998_low", "limit998_high", "flag",
               "bookings"]
    columns += [f"{metric}_{part}" for metric in MEANS
                for part in ("mean", "org", "shrunk", "limit998_low", "limit998_high", "flag")]
    table = pd.concat(tables, ignore_index=True).reindex(columns=columns) if tables else pd.DataFrame(columns=columns)
    table["open"] = table["open"].astype("Int64")  # counted for the whole window only
    return table, (pd.concat(trend_tables, ignore_index=True) if trend_tables else pd.DataFrame())


def deal_table(used: pd.DataFrame, cycle_days: pd.Series, territory: pd.Series | None = None) -> pd.DataFrame:
    """The used rows as ``performance`` reads them; ``territory`` replaces the canonical one (``--territory-by``)."""
    response = (used["first_response_at"] - used["created_at"]).dt.total_seconds() / 3_600
    return pd.DataFrame({
        "owner": used["owner"], "territory": used["territory"] if territory is None else territory.to_numpy(),
        "outcome": used["outcome"], "amount": used["amount"].astype(float), "cycle_days": cycle_days.to_numpy(),
        "response_hours": response.to_numpy(), "closed_at": used["closed_at"]})
