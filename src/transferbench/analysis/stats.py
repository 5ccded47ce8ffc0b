"""Statistics of the study, on log odds (Kornblith et al. 2019, section 3; README Conventions).

Conventions:
- logit(p) = log(p / (1 - p)) with p clipped to [EPS, 1 - EPS], EPS = 1e-4 (a perfect score counts as 99.99%).
- The headline r, per mode: Pearson r between ImageNet top-1 (percent, as reported) and the mean over datasets of
  the transfer log odds, one point per model. r is invariant to the affine rescaling of top-1.
- 95% intervals: percentile bootstrap over models (resampling models with replacement), seeded.
- Regressions with dataset fixed effects (OLS on log odds, binomial GLM): transferbench.analysis.regression.
- Models not significantly worse than the best per dataset (paired tests, Holm): transferbench.analysis.paired_tests.
- Mode comparison: in how many model x dataset pairs one mode beats another (the paper: fine-tuning beat the
  linear probe in 179 of 192); equal values count as ties, not wins.

- An r needs at least 3 models with different upstream top-1 and transfer: otherwise it is NaN and the row's
  `note` says why (correlations.csv).

Written to files (the workflow's compute_statistics rule, or `python -m transferbench.analysis`):
transferbench.analysis.statistics.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

EPS = 1e-4
SMALL_DATASET = 10_000  # the paper's split: datasets under 10,000 training examples vs the rest


def logit(p, eps: float = EPS):
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


def pearson_r(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def r_note(x, y) -> str:
    """Why Pearson r of these points is undefined ('' when it is defined)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return f"r needs at least 3 models ({len(x)} here)"
    if np.std(x) == 0:
        return "r undefined: every model has the same upstream top-1"
    if np.std(y) == 0:
        return "r undefined: every model has the same transfer log odds"
    return ""


def bootstrap_r(x, y, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of Pearson r, resampling the points (models) with replacement."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    xs, ys = x[idx], y[idx]
    xs, ys = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
    denom = np.sqrt((xs ** 2).sum(1) * (ys ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rs = (xs * ys).sum(1) / denom
    rs = rs[np.isfinite(rs)]
    alpha = (1 - level) / 2
    return float(np.quantile(rs, alpha)), float(np.quantile(rs, 1 - alpha))


def model_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per model: ImageNet top-1 and the mean over datasets of transfer log odds (one mode's rows)."""
    t = table.assign(log_odds=logit(table["value"]))
    return t.groupby("model").agg(imagenet_top1=("imagenet_top1", "first"), mean_log_odds=("log_odds", "mean"),
                                  n_datasets=("dataset", "nunique")).reset_index()


def morey_intervals(table: pd.DataFrame, level: float = 0.95) -> pd.Series:
    """Half-widths of Morey (2008) within-dataset intervals of each model's mean log odds across datasets.

    Normalize out each dataset's mean (Cousineau), take the per-model standard error across datasets, and correct
    the variance by J / (J - 1) for J models (Morey's correction).
    """
    from scipy import stats as st

    t = table.assign(log_odds=logit(table["value"]))
    wide = t.pivot_table(index="model", columns="dataset", values="log_odds")
    normalized = wide - wide.mean(axis=0) + wide.values.mean()
    n_models, n_datasets = wide.shape
    if n_datasets < 2 or n_models < 2:
        return pd.Series(np.nan, index=wide.index)
    sem = normalized.std(axis=1, ddof=1) / np.sqrt(n_datasets) * np.sqrt(n_models / (n_models - 1))
    return sem * st.t.ppf(0.5 + level / 2, n_datasets - 1)


def correlations(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """r with bootstrap interval per mode: over all datasets, per dataset, and for small / large datasets (a row for
    each size group that has datasets; when all datasets fall in one group, its note says so). `note` says why an r
    is NaN (fewer than 3 models, constant top-1 or transfer), else it is empty. `n_train`: the dataset's training
    examples (train + val), on per-dataset rows only."""
    rows = []

    def add(mode, subset, part, note="", n_train=float("nan")):
        means = model_means(part)
        x, y = means["imagenet_top1"], means["mean_log_odds"]
        low, high = bootstrap_r(x, y, n_boot, seed) if not r_note(x, y) else (float("nan"), float("nan"))
        rows.append({"mode": mode, "subset": subset, "r": pearson_r(x, y), "ci_low": low, "ci_high": high,
                     "n_models": len(means), "n_datasets": part["dataset"].nunique(), "n_train": n_train,
                     "note": "; ".join(n for n in (r_note(x, y), note) if n)})

    for mode, part in table.groupby("mode", sort=True):
        add(mode, "all", part)
        small = part["n_train"] < SMALL_DATASET
        groups = ((f"n_train<{SMALL_DATASET}", small, f"no dataset has >= {SMALL_DATASET:,} training examples"),
                  (f"n_train>={SMALL_DATASET}", ~small, f"no dataset has < {SMALL_DATASET:,} training examples"))
        for subset, mask, alone in groups:
            if mask.any():
                add(mode, subset, part[mask], "" if (~mask).any() else f"{alone}: this group is every dataset")
        for dataset, d in part.groupby("dataset", sort=True):
            add(mode, f"dataset={dataset}", d, n_train=d["n_train"].iloc[0])
    columns = ["mode", "subset", "r", "ci_low", "ci_high", "n_models", "n_datasets", "n_train", "note"]
    return pd.DataFrame(rows, columns=columns)


def mode_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """For each ordered pair of modes (finetune vs linear, finetune vs scratch, scratch vs linear, and BiT-HyperRule
    vs the grid search's finetune): over the model x dataset pairs that have both, how often the first is higher,
    lower or equal."""
    wide = table.pivot_table(index=["model", "dataset"], columns="mode", values="value")
    rows = []
    for a, b in (("finetune", "linear"), ("finetune", "scratch"), ("scratch", "linear"), ("bit", "finetune")):
        if a in wide and b in wide:
            both = wide[[a, b]].dropna()
            rows.append({"mode_a": a, "mode_b": b, "a_wins": int((both[a] > both[b]).sum()),
                         "b_wins": int((both[a] < both[b]).sum()), "ties": int((both[a] == both[b]).sum()),
                         "pairs": len(both)})
    return pd.DataFrame(rows, columns=["mode_a", "mode_b", "a_wins", "b_wins", "ties", "pairs"])
