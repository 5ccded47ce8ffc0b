"""Which models are not significantly worse than the best, per mode and dataset (the paper's highlighted points).

Each model is compared with the dataset's best model (highest metric) on the same test examples:
- top-1: the exact McNemar test, i.e. a two-sided binomial test on the examples exactly one of the two gets right;
- mean per-class accuracy and mAP: a paired permutation test of the metric difference (each example's pair of
  predictions swapped with probability 1/2; seeded). For mAP the scores are first turned into within-class ranks
  of each model, so swapped rows stay comparable (AP depends only on the ranking).
p-values are Holm-corrected over the models compared on that dataset; a model is "not worse" when the corrected
p-value exceeds 0.05 (the best model is not worse by definition).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from transferbench import metrics
from transferbench.predictions import load_predictions

ALPHA = 0.05


def mcnemar_p(correct_a, correct_b) -> float:
    """Exact two-sided McNemar p-value for paired per-example correctness."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    return float(mcnemar(table, exact=True).pvalue)


def permutation_p(metric: str, labels, outputs_a, outputs_b, n_perm: int = 2000, seed: int = 0) -> float:
    """Two-sided paired permutation p-value of score(a) - score(b), with the (1 + count) / (1 + n_perm) estimate."""
    a, b = np.asarray(outputs_a), np.asarray(outputs_b)
    observed = abs(metrics.score(metric, labels, a) - metrics.score(metric, labels, b))
    rng = np.random.default_rng(seed)
    count = 0
    for _ in range(n_perm):
        swap = rng.random(len(a)) < 0.5
        mask = swap[:, None] if a.ndim == 2 else swap
        diff = metrics.score(metric, labels, np.where(mask, b, a)) - metrics.score(metric, labels, np.where(mask, a, b))
        count += abs(diff) >= observed - 1e-12
    return (1 + count) / (1 + n_perm)


def _comparable_outputs(metric: str, scores: np.ndarray) -> np.ndarray:
    if metric == "map_11point":
        return rankdata(scores, axis=0) / len(scores)  # within-class ranks: same ordering, common scale
    return scores.argmax(axis=1)


def compare_to_best(part: pd.DataFrame, n_perm: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One mode x dataset's rows (with a `predictions` column): each model against the best, Holm-corrected."""
    part = part.sort_values(["value", "model"], ascending=[False, True])
    metric = part["metric"].iloc[0]
    loaded = {row.model: load_predictions(row.predictions) for row in part.itertuples()}
    best = part["model"].iloc[0]
    labels = loaded[best][0]
    for model, (other_labels, _) in loaded.items():
        if other_labels.shape != labels.shape or not np.array_equal(other_labels, labels):
            raise ValueError(f"predictions of {model} and {best} on {part['dataset'].iloc[0]} ({part['mode'].iloc[0]}) "
                             "are not on the same test examples in the same order")
    outputs = {m: _comparable_outputs(metric, scores) for m, (_, scores) in loaded.items()}
    rows = []
    for model in part["model"].iloc[1:]:
        if metric == "top1":
            p = mcnemar_p(outputs[best] == labels, outputs[model] == labels)
        else:
            p = permutation_p(metric, labels, outputs[best], outputs[model], n_perm, seed)
        rows.append({"model": model, "p": p})
    p_holm = multipletests([r["p"] for r in rows], method="holm")[1] if rows else []
    result = [{"model": best, "p": np.nan, "p_holm": np.nan, "not_worse": True}]
    result += [{**r, "p_holm": float(ph), "not_worse": bool(ph > ALPHA)} for r, ph in zip(rows, p_holm)]
    out = pd.DataFrame(result).merge(part[["model", "value"]], on="model")
    return out.assign(mode=part["mode"].iloc[0], dataset=part["dataset"].iloc[0], metric=metric, best_model=best)


def paired_tests(table: pd.DataFrame, n_perm: int = 2000, seed: int = 0) -> pd.DataFrame:
    """compare_to_best for every mode x dataset of a results table that has a `predictions` column."""
    columns = ["mode", "dataset", "metric", "model", "value", "best_model", "p", "p_holm", "not_worse"]
    parts = [compare_to_best(part, n_perm, seed) for _, part in table.groupby(["mode", "dataset"], sort=True)
             if len(part) >= 2]
    return pd.concat(parts)[columns].reset_index(drop=True) if parts else pd.DataFrame(columns=columns)
