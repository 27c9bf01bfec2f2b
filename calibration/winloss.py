"""Win/loss analysis: which attributes drive the won rate of closed deals, which only look as if they did.

For each attribute and level: deals, won, lost, open and the won rate among closed deals with its Wilson 95%
interval. Then one multivariable logistic regression of won against lost (statsmodels), on the attributes known
while a deal is open, with odds ratios, 95% intervals and p-values adjusted by Benjamini–Hochberg. Open deals are
neither wins nor losses and stay out of the model.

Rules, stated once:

- **Rare levels**: a level with fewer than ``min_level`` closed deals is pooled into ``other``; the reference level
  of each attribute is its largest (a numeric attribute's lowest band).
- **Skips**: an attribute with one level (after pooling) has nothing to compare and leaves the model; an attribute
  with a level whose closed deals are all won or all lost separates the outcome perfectly, so its odds ratio is
  infinite: it is named and left out of the model (its won rates stay in the table); an attribute whose levels are
  determined by the attributes before it (collinear) is named and left out.
- **Leakage**: an attribute the mapping declares ``recorded: close``, or one that (a) differs by outcome
  (chi-square p < 0.05) and (b) tracks how long the deal stayed open (it explains at least 9% of the rank variance
  of the cycle length among closed deals: Spearman ρ² for a number, Kruskal–Wallis ε² for labels) is flagged: its
  value is only known at the close, so it explains outcomes without predicting them. Leakage attributes are
  reported apart, each with its own one-attribute odds ratios, and kept out of the driver model. ``recorded: open``
  keeps an attribute in the model whatever the data say (the association is still reported).
- **Held-out check**: the model refitted on the first 80% of closed deals by creation date (export order for an
  undated export) predicts the last 20%: AUC and predicted against observed won rate by decile.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from calibration.attributes import MISSING, AttributeColumn, analysed_attributes, attribute_cells, attribute_column
from calibration.audit import Audit
from calibration.mapping import CalibrationError
from calibration.reading import RawExport

#: A level with fewer closed deals than this is pooled into ``other``.
MIN_LEVEL_CLOSED = 30
#: Share of the cycle length's rank variance an attribute must explain to count as recorded at the close.
LEAKAGE_SHARE = 0.09
#: Significance level of every test (after adjustment where several are made).
ALPHA = 0.05
#: Share of closed deals, the latest created, held out to check the model.
HOLDOUT_SHARE = 0.2
#: Label of pooled rare levels.
OTHER = "other"
#: A coefficient beyond this (odds ratio e^15) means quasi-separation: the attribute is left out.
MAX_ABS_COEF = 15.0


@dataclass
class WinLoss:
    """The analysis: ``levels`` (one row per attribute and level: drivers.csv), ``attributes`` (one dict per
    attribute: its kind, status, leakage test and adjusted p), the model's fit, the held-out check, lost reasons
    and notes."""

    levels: pd.DataFrame
    attributes: list[dict]
    model: dict
    holdout: dict
    lost_reasons: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def drivers(self, top: int = 10) -> pd.DataFrame:
        """The model's levels with an adjusted p below ``ALPHA``, strongest first (by |log odds ratio|)."""
        rows = self.levels[self.levels["in_model"] & (self.levels["p_adjusted"] < ALPHA)]
        return rows.reindex(rows["odds_ratio"].map(lambda v: abs(np.log(v))).sort_values(ascending=False).index).head(top)


def outcomes(outcome: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(closed, won) masks of the used rows; an export without both won and lost deals is an error saying so."""
    closed = outcome.isin(("won", "lost")).to_numpy()
    won = outcome.eq("won").to_numpy()
    n_closed, n_won = int(closed.sum()), int(won.sum())
    if n_closed == 0:
        raise CalibrationError("export", [f"no closed deals among {len(outcome):,} used rows (all open): a win/loss "
                                          "analysis needs won and lost deals"])
    if n_won in (0, n_closed):
        label = "won" if n_won else "lost"
        raise CalibrationError("export", [f"all {n_closed:,} closed deals are {label}: a win/loss analysis needs both "
                                          "won and lost deals (check outcome_values in the mapping)"])
    return closed, won


def analyse(columns: list[AttributeColumn], outcome: pd.Series, cycle_days: pd.Series, order: pd.Series,
            min_level: int = MIN_LEVEL_CLOSED) -> WinLoss:
    """The win/loss analysis of the used rows: ``outcome`` (won, lost, open), ``cycle_days`` (created → closed,
    NaN if unknown), ``order`` (creation order for the held-out split) and the attributes' columns."""
    closed, won = outcomes(outcome)
    tables, infos, model_levels = [], [], {}
    for column in columns:
        table = level_table(column, outcome)
        info = {"attribute": column.name, "column": column.column, "kind": column.kind, "recorded": column.recorded,
                "levels": len(table)}
        info |= leakage_test(column, closed, won, cycle_days)
        pooled, reference, n_pooled = pool_levels(column, closed, min_level)
        kept = set(pooled)
        table["model_level"] = table["level"].map(lambda level: level if level in kept else OTHER)
        info["reference"], info["pooled_levels"] = reference, n_pooled
        info["status"], info["reason"] = _status(column, info, pooled[closed], won[closed])
        if info["status"] in ("driver", "leakage"):
            model_levels[column.name] = (pooled, reference)
        tables.append(table)
        infos.append(info)
    status = {info["attribute"]: info["status"] for info in infos}
    drivers = {name: value for name, value in model_levels.items() if status[name] == "driver"}
    model, fitted = fit_drivers(drivers, closed, won, infos)
    levels = _with_odds(pd.concat(tables, ignore_index=True), infos, fitted, model_levels, closed, won)
    holdout = held_out(drivers, infos, closed, won, order)
    notes = [f"{info['attribute']}: {'leakage, ' if info['status'] == 'leakage' else ''}{info['reason']}"
             for info in infos if info["status"] != "driver"]
    return WinLoss(levels, infos, model, holdout, None, notes)


def level_table(column: AttributeColumn, outcome: pd.Series) -> pd.DataFrame:
    """Per level: deals, won, lost, open, and the won rate among closed deals with its Wilson 95% interval."""
    from statsmodels.stats.proportion import proportion_confint

    codes, labels = pd.factorize(column.levels, sort=True)
    counts = pd.DataFrame({"attribute": column.name, "level": labels.astype(str)})
    for label in ("won", "lost", "open"):
        counts[label] = np.bincount(codes[outcome.eq(label).to_numpy()], minlength=len(labels))
    counts.insert(2, "deals", counts[["won", "lost", "open"]].sum(axis=1))
    closed = counts["won"] + counts["lost"]
    with np.errstate(divide="ignore", invalid="ignore"):
        counts["won_rate"] = np.where(closed > 0, counts["won"] / closed.where(closed > 0, 1), np.nan)
        low, high = proportion_confint(counts["won"], closed.where(closed > 0, 1), alpha=ALPHA, method="wilson")
    counts["won_rate_low"] = np.where(closed > 0, low, np.nan)
    counts["won_rate_high"] = np.where(closed > 0, high, np.nan)
    if column.kind == "numeric":  # bands in their order, missing last
        counts = counts.sort_values("level", key=lambda s: s.map(lambda v: (v == MISSING, _band_index(v))))
    else:
        counts = counts.sort_values("deals", ascending=False, kind="stable")
    return counts.reset_index(drop=True)


def _band_index(label: str) -> int:
    return int(label[1:label.index(" ")]) if label.startswith("Q") and " " in label else 0


def pool_levels(column: AttributeColumn, closed: np.ndarray, min_level: int) -> tuple[np.ndarray, str, int]:
    """Each row's model level (rare levels as ``other``), the reference level and how many levels were pooled."""
    levels = column.levels.to_numpy(dtype=object)
    counts = pd.Series(levels[closed]).value_counts()
    rare = set(counts[counts < min_level].index) | (set(pd.unique(levels)) - set(counts.index))
    pooled = np.where(pd.Series(levels).isin(rare), OTHER, levels)
    kept = pd.Series(pooled[closed]).value_counts()
    if column.kind == "numeric":
        bands = sorted((level for level in kept.index if level not in (MISSING, OTHER)), key=_band_index)
        reference = bands[0] if bands else str(kept.index[0])
    else:
        reference = str(kept.index[0]) if len(kept) else OTHER
    return pooled, reference, len(rare)


def leakage_test(column: AttributeColumn, closed: np.ndarray, won: np.ndarray, cycle_days: pd.Series) -> dict:
    """Does the attribute differ by outcome (chi-square p), and how much of the cycle length's rank variance does it
    explain among closed deals (Spearman ρ² for numbers, Kruskal–Wallis ε² for labels)?"""
    levels = column.levels.to_numpy()[closed]
    codes, labels = pd.factorize(levels)
    table = np.stack([np.bincount(codes[won[closed]], minlength=len(labels)),
                      np.bincount(codes[~won[closed]], minlength=len(labels))], axis=1)
    outcome_p = float(stats.chi2_contingency(table)[1]) if len(labels) > 1 else 1.0
    cycle = cycle_days.to_numpy(dtype=float)[closed]
    share = None
    if column.numbers is not None:
        values = column.numbers.to_numpy()[closed]
        ok = np.isfinite(values) & np.isfinite(cycle)
        if ok.sum() >= MIN_LEVEL_CLOSED and np.ptp(values[ok]) > 0 and np.ptp(cycle[ok]) > 0:
            share = float(stats.spearmanr(values[ok], cycle[ok]).statistic ** 2)
    else:
        ok = np.isfinite(cycle)
        groups = [cycle[ok & (levels == level)] for level in pd.unique(levels[ok])]
        groups = [g for g in groups if len(g)]
        if ok.sum() >= MIN_LEVEL_CLOSED and len(groups) > 1 and np.ptp(cycle[ok]) > 0:
            h = stats.kruskal(*groups).statistic
            share = float(h / (ok.sum() - 1))
    tracks = share is not None and share >= LEAKAGE_SHARE
    leakage = column.recorded == "close" or (column.recorded is None and tracks and outcome_p < ALPHA)
    return {"outcome_p": outcome_p, "duration_share": share, "tracks_duration": tracks, "leakage": leakage}


def _status(column: AttributeColumn, info: dict, levels: np.ndarray, won: np.ndarray) -> tuple[str, str]:
    """driver, leakage, or why the attribute is skipped; a reason in words."""
    distinct = pd.unique(levels)
    if len(pd.unique(column.levels)) < 2:
        return "skipped", f"one level ({column.levels.iloc[0]!r}) in every used row: nothing to compare"
    if len(distinct) < 2:
        return "skipped", f"one level ({distinct[0] if len(distinct) else OTHER!r}) among closed deals after pooling rare levels"
    if info["leakage"]:
        why = ["declared recorded at the close"] if column.recorded == "close" else []
        if info["tracks_duration"]:
            p = info["outcome_p"]
            why.append(f"tracks the cycle length ({info['duration_share']:.0%} of its rank variance) and differs by "
                       f"outcome (p{'<1e-300' if p < 1e-300 else f'={p:.2g}'})")
        return "leakage", "; ".join(why)
    frame = pd.DataFrame({"level": levels, "won": won})
    rates = frame.groupby("level")["won"].agg(["mean", "size"])
    pure = rates[(rates["mean"] == 0) | (rates["mean"] == 1)]
    if len(pure):
        level, row = next(iter(pure.iterrows()))
        return "separating", (f"separates the outcome: all {int(row['size']):,} closed deals with level {level!r} are "
                              f"{'won' if row['mean'] == 1 else 'lost'} (infinite odds ratio); left out of the model")
    return "driver", ""


def design(attributes: dict[str, tuple[np.ndarray, str]], rows: np.ndarray) -> pd.DataFrame:
    """Indicator columns ``attribute=level`` (reference levels left out) for the rows selected by ``rows``."""
    blocks, names = [np.ones(int(rows.sum()))], ["const"]
    for name, (levels, reference) in attributes.items():
        codes, uniques = pd.factorize(levels[rows], sort=True)
        for code, level in enumerate(uniques):
            if level != reference:
                blocks.append((codes == code).astype(float))
                names.append(f"{name}={level}")
    return pd.DataFrame(np.column_stack(blocks), columns=names)


def _full_rank(attributes: dict[str, tuple[np.ndarray, str]], rows: np.ndarray) -> bool:
    matrix = design(attributes, rows).to_numpy()
    return bool(np.linalg.matrix_rank(matrix.T @ matrix) == matrix.shape[1])


def drop_collinear(attributes: dict[str, tuple[np.ndarray, str]], rows: np.ndarray) -> tuple[dict, dict[str, list[str]]]:
    """The attributes that keep the design of full rank, in order; for each one left out, the earlier attributes
    it is collinear with (each alone, or all together when no single one is)."""
    kept: dict = {}
    dropped: dict[str, list[str]] = {}
    for name, value in attributes.items():
        if _full_rank(kept | {name: value}, rows):
            kept[name] = value
        else:
            dropped[name] = [other for other in kept if not _full_rank({other: kept[other], name: value}, rows)] or list(kept)
    return kept, dropped


def fit_logit(y: np.ndarray, x: pd.DataFrame):
    """statsmodels' logistic regression, or None when it cannot be fitted; warnings about separation are checked by
    the caller from the coefficients."""
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = sm.Logit(y, x, check_rank=False).fit(disp=0, maxiter=100, method="newton")
        except (np.linalg.LinAlgError, ValueError):
            return None
    if not np.all(np.isfinite(result.params)) or not np.all(np.isfinite(result.bse)):
        return None
    return result


def fit_drivers(drivers: dict, closed: np.ndarray, won: np.ndarray, infos: list[dict]):
    """The multivariable model on closed deals: collinear and quasi-separating attributes named and left out
    (their status and reason updated in ``infos``); the fit summary and the statsmodels result (or None)."""
    by_name = {info["attribute"]: info for info in infos}
    kept, collinear = drop_collinear(drivers, closed)
    for name, others in collinear.items():
        by_name[name]["status"] = "collinear"
        by_name[name]["reason"] = f"collinear with {', '.join(others)} (its levels add nothing the model can tell apart); left out"
    y = won[closed].astype(float)
    result = None
    while kept:
        result = fit_logit(y, design(kept, closed))
        if result is None:
            return {"fitted": False, "reason": "the logistic regression could not be fitted", "n": int(closed.sum())}, None
        huge = [c for c in result.params.index[1:] if abs(result.params[c]) > MAX_ABS_COEF]
        if not huge:
            break
        for name in {c.split("=", 1)[0] for c in huge}:
            by_name[name]["status"] = "separating"
            by_name[name]["reason"] = "quasi-separation in the model (an odds ratio beyond e^15); left out"
            kept.pop(name)
        result = None
    if result is None:
        return {"fitted": False, "reason": "no attribute known while the deal is open is left to model",
                "n": int(closed.sum())}, None
    _attribute_tests(result, kept, by_name)
    model = {"fitted": True, "n": int(closed.sum()), "won": int(won[closed].sum()), "attributes": list(kept),
             "parameters": int(len(result.params)), "converged": bool(result.mle_retvals.get("converged", True)),
             "pseudo_r2": float(1 - result.llf / _null_log_likelihood(y)), "log_likelihood": float(result.llf)}
    return model, result


def _null_log_likelihood(y: np.ndarray) -> float:
    """The log-likelihood of the intercept-only model, in closed form (its fit is the observed rate): McFadden's
    pseudo R² without a second fit."""
    rate = y.mean()
    return float(len(y) * (rate * np.log(rate) + (1 - rate) * np.log(1 - rate)))


def _attribute_tests(result, kept: dict, by_name: dict) -> None:
    """Each modelled attribute's joint Wald test, adjusted across attributes by Benjamini–Hochberg."""
    from statsmodels.stats.multitest import multipletests

    names, pvalues = [], []
    for name in kept:
        columns = [c for c in result.params.index if c.split("=", 1)[0] == name and c != "const"]
        if not columns:
            continue
        matrix = np.zeros((len(columns), len(result.params)))
        for i, c in enumerate(columns):
            matrix[i, result.params.index.get_loc(c)] = 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = result.wald_test(matrix, scalar=True)
        names.append(name)
        pvalues.append(float(test.pvalue))
    adjusted = multipletests(pvalues, method="fdr_bh")[1] if pvalues else []
    for name, p, q in zip(names, pvalues, adjusted):
        by_name[name]["p"] = p
        by_name[name]["p_adjusted"] = float(q)
        by_name[name]["significant"] = bool(q < ALPHA)


def _with_odds(levels: pd.DataFrame, infos: list[dict], fitted, model_levels: dict, closed: np.ndarray,
               won: np.ndarray) -> pd.DataFrame:
    """The level table with each level's odds ratio against its reference, 95% interval and p adjusted by
    Benjamini–Hochberg: from the driver model (adjusted across its levels), or for a leakage attribute from a model
    of that attribute alone (adjusted across the leakage levels)."""
    from statsmodels.stats.multitest import multipletests

    columns = ["odds_ratio", "or_low", "or_high", "p", "p_adjusted"]
    levels = levels.copy()
    by_name = {info["attribute"]: info for info in infos}
    groups = [_estimates(fitted) if fitted is not None else {}, {}]  # the driver model's levels; leakage levels
    for name, info in by_name.items():
        if info["status"] == "leakage":
            alone = fit_logit(won[closed].astype(float), design({name: model_levels[name]}, closed))
            if alone is not None:
                groups[1] |= _estimates(alone)
    estimates = {}
    for group in groups:  # adjusted within each family of tests
        if group:
            adjusted = multipletests([value[3] for value in group.values()], method="fdr_bh")[1]
            estimates |= {key: (*value, q) for (key, value), q in zip(group.items(), adjusted)}
    attribute = levels["attribute"].map(by_name)
    status = attribute.map(lambda info: info["status"])
    keys = list(zip(levels["attribute"], levels["model_level"]))
    reference = status.isin(("driver", "leakage")) & levels["model_level"].eq(attribute.map(lambda info: info["reference"]))
    values = np.array([estimates.get(key, (np.nan,) * 5) for key in keys], dtype=float).reshape(len(levels), 5)
    values[reference.to_numpy()] = [1.0, 1.0, 1.0, np.nan, np.nan]
    levels[columns] = values
    levels["reference"] = reference.to_numpy()
    levels["leakage"] = attribute.map(lambda info: bool(info["leakage"])).to_numpy()
    levels["status"] = status.to_numpy()
    levels["in_model"] = (status.eq("driver") & attribute.map(lambda info: info.get("p") is not None)).to_numpy()
    order = ["attribute", "level", "model_level", "deals", "won", "lost", "open", "won_rate", "won_rate_low",
             "won_rate_high", "reference", "odds_ratio", "or_low", "or_high", "p", "p_adjusted", "leakage", "status",
             "in_model"]
    return levels[order]


def _estimates(result) -> dict[tuple[str, str], tuple[float, float, float, float]]:
    interval = result.conf_int(alpha=ALPHA)
    out = {}
    for column in result.params.index[1:]:
        name, level = column.split("=", 1)
        out[(name, level)] = (float(np.exp(result.params[column])), float(np.exp(interval.loc[column, 0])),
                              float(np.exp(interval.loc[column, 1])), float(result.pvalues[column]))
    return out


def held_out(drivers: dict, infos: list[dict], closed: np.ndarray, won: np.ndarray, order: pd.Series,
             share: float = HOLDOUT_SHARE) -> dict:
    """The driver model fitted on the earliest ``1 - share`` of closed deals, scored on the rest: AUC, and predicted
    against observed won rate by decile of the prediction."""
    modelled = {info["attribute"] for info in infos if info["status"] == "driver"}
    kept = {name: value for name, value in drivers.items() if name in modelled}
    if not kept:
        return {"done": False, "reason": "no driver model"}
    index = np.flatnonzero(closed)
    ranked = index[np.argsort(order.to_numpy()[index], kind="stable")]
    n_test = int(round(len(ranked) * share))
    train, test = np.zeros_like(closed), np.zeros_like(closed)
    train[ranked[:-n_test]] = True
    test[ranked[-n_test:]] = True
    y_test = won[test]
    if n_test < 2 * MIN_LEVEL_CLOSED or y_test.all() or not y_test.any():
        return {"done": False, "reason": f"the held-out {n_test:,} deals are too few or all one outcome"}
    x_train = design(kept, train)
    x_test = design(kept, test).reindex(columns=x_train.columns, fill_value=0.0)
    seen = x_train.columns[(x_train != 0).any()]
    result = fit_logit(won[train].astype(float), x_train[seen])
    if result is None:
        return {"done": False, "reason": "the model could not be fitted on the earlier 80%"}
    predicted = np.asarray(result.predict(x_test[seen]))
    auc = float(stats.mannwhitneyu(predicted[y_test], predicted[~y_test]).statistic / (y_test.sum() * (~y_test).sum()))
    deciles = pd.qcut(pd.Series(predicted).rank(method="first"), 10, labels=False)
    table = pd.DataFrame({"decile": deciles + 1, "predicted": predicted, "observed": y_test.astype(float)})
    by_decile = table.groupby("decile").agg(deals=("observed", "size"), predicted=("predicted", "mean"),
                                            observed=("observed", "mean")).reset_index()
    return {"done": True, "train": int(train.sum()), "test": int(n_test), "auc": auc,
            "predicted_rate": float(predicted.mean()), "observed_rate": float(y_test.mean()),
            "max_decile_gap": float((by_decile["predicted"] - by_decile["observed"]).abs().max()),
            "deciles": by_decile.to_dict(orient="records"),
            "unseen_levels": sorted(set(x_train.columns) - set(seen))}


def lost_reasons(reasons: pd.Series, outcome: pd.Series, segment: pd.Series, closed_at: pd.Series) -> pd.DataFrame:
    """Lost deals by reason: counts and shares overall, by segment and by quarter of the close."""
    lost = outcome.eq("lost").to_numpy()
    frame = pd.DataFrame({"reason": reasons.fillna(MISSING).to_numpy()[lost], "segment": segment.to_numpy()[lost],
                          "quarter": pd.to_datetime(closed_at).dt.to_period("Q").astype(str).to_numpy()[lost]})
    frame["all"] = "all"
    parts = []
    for by in ("all", "segment", "quarter"):
        counts = frame.groupby([by, "reason"]).size().rename("lost").reset_index().rename(columns={by: "group"})
        counts["share"] = counts["lost"] / counts.groupby("group")["lost"].transform("sum")
        counts.insert(0, "by", by)
        parts.append(counts)
    return pd.concat(parts, ignore_index=True)


def cycle_days(used: pd.DataFrame) -> pd.Series:
    """Days from creation to close of the used rows (NaN while open): from the dates, or the export's cycle_days."""
    if used["created_at"].notna().any():
        return (used["closed_at"] - used["created_at"]).dt.total_seconds() / 86_400
    return used["cycle_days"].astype(float)


def analyse_export(raw: RawExport, checked: Audit, export: Path, source: str, min_level: int = MIN_LEVEL_CLOSED) -> WinLoss:
    """The win/loss analysis of an audited export: its mapping's attributes and canonical labels on the used rows,
    lost reasons when the mapping names their column."""
    mapping, used = checked.mapping, checked.used
    specs = analysed_attributes(mapping)
    cells = attribute_cells(raw, mapping, export, source, specs).drop(index=checked.quarantine.index)
    columns = [attribute_column(name, spec, cells[name]) for name, spec in specs.items()]
    if not columns:
        raise CalibrationError(source, ["no attributes to analyse: map segment, territory or source, or list "
                                        "attributes: (name: {column: ...})"])
    dated = used["created_at"].notna().any()
    order = used["created_at"] if dated else pd.Series(np.arange(len(used)), dtype=float)
    result = analyse(columns, used["outcome"], cycle_days(used), order, min_level)
    if not dated:
        result.notes.append("undated export: the held-out 20% are the last closed deals in the export's order")
    if mapping.lost_reason is not None:
        if mapping.lost_reason not in raw.frame.columns:
            raise CalibrationError(source, [f"lost_reason: names column {mapping.lost_reason!r}, which is not in {export.name}"])
        reasons = raw.frame[mapping.lost_reason].drop(index=checked.quarantine.index)
        result.lost_reasons = lost_reasons(reasons, used["outcome"], used["segment"], used["closed_at"])
    return result
