"""Statistics of the sweeps (transferbench.sweeps): the dataset-size study (Kornblith et al. Fig. 9, BiT's few-shot
transfer), the training-budget study (Fig. 8) and the schedule study (Rethinking ImageNet Pre-training).

Conventions (log odds as in transferbench.analysis.stats):
- Dataset size, per model x dataset x mode x examples per class: mean and standard error over draws (the paper's
  error bars: SE = sample std (ddof 1) / sqrt(draws); NaN with one draw), and BiT's few-shot convention, the median
  and range (min, max) over draws.
- r per size: Pearson r between upstream top-1 and the mean over datasets of each model's log odds (first averaged
  over draws), per mode and examples per class, with a percentile bootstrap interval over models. It answers
  whether the correlation holds at 1 example per class; it needs 3 models (else NaN and a note).
- Convergence, per model x dataset x mode: the best log odds over the budgets, and the fewest steps whose log odds
  reach 90% of it (the paper's "90% of its final log odds"; undefined, with a note, when the best log odds are not
  positive: 90% of a negative number is above it). Speedup = scratch's steps / finetune's (the paper: 17x on
  average).
- Schedules, per model x dataset x norm x multiple of the scratch runs: the gap = scratch's log odds minus
  fine-tuning's at the same multiple (the schedule study's own finetune run; where the study fine-tunes this model
  and dataset at other multiples only, no gap; where it does not fine-tune them at all, the main study's fine-tuning
  at 1x: one reference per model and dataset, stated in `reference`). Summary per norm, multiple and training-set
  size group (fewer than 10,000 training examples, or at least: the paper's split): mean gap and its standard error
  over model x dataset.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferbench.analysis.results import TableError
from transferbench.analysis.stats import bootstrap_r, logit, pearson_r, r_note

THRESHOLD = 0.9
SIZE_KEY = ["model", "dataset", "mode", "examples_per_class"]


def _rows(table: pd.DataFrame, study: str, required: list[str]) -> pd.DataFrame:
    rows = table[table["study"] == study] if "study" in table else table.iloc[:0]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise TableError(f"results table lacks the {study} column(s) {missing}")
    empty = rows[required].isna().any(axis=1)
    if empty.any():
        raise TableError(f"{int(empty.sum())} {study} row(s) have no {' or '.join(required)}")
    rows = rows.astype({c: int for c in required})  # (read back as floats where main rows leave them empty)
    return rows.assign(log_odds=logit(rows["value"]))


def dataset_size_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model x dataset x mode x examples per class: draws, mean and SE, median, min and max over draws, of the
    metric and of its log odds; mean training examples (for the figure's top axis)."""
    rows = _rows(table, "dataset_size", ["examples_per_class", "draw"])
    grouped = rows.groupby(SIZE_KEY, sort=True)
    out = grouped.agg(draws=("draw", "nunique"), imagenet_top1=("imagenet_top1", "first"), metric=("metric", "first"),
                      mean=("value", "mean"), se=("value", "sem"), median=("value", "median"), min=("value", "min"),
                      max=("value", "max"), mean_log_odds=("log_odds", "mean"), se_log_odds=("log_odds", "sem"),
                      n_train=("n_train", "mean"))
    return out.reset_index()


def few_shot_table(summary: pd.DataFrame) -> pd.DataFrame:
    """BiT's few-shot table: one row per model x dataset x mode, one column per examples per class, each cell
    'median [min, max]' over draws in percent."""
    cells = summary.assign(cell=[f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" if d > 1 else f"{100 * m:.1f}"
                                 for m, lo, hi, d in zip(summary["median"], summary["min"], summary["max"],
                                                         summary["draws"])])
    wide = cells.pivot_table(index=["model", "dataset", "mode"], columns="examples_per_class", values="cell",
                             aggfunc="first")
    wide.columns = [f"{k}/class" for k in wide.columns]
    return wide.reset_index()


def size_correlations(summary: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """r between upstream top-1 and mean log odds over datasets, per mode and examples per class (module doc)."""
    rows = []
    for (mode, k), part in summary.groupby(["mode", "examples_per_class"], sort=True):
        means = part.groupby("model").agg(top1=("imagenet_top1", "first"), y=("mean_log_odds", "mean"))
        x, y = means["top1"], means["y"]
        note = r_note(x, y)
        low, high = bootstrap_r(x, y, n_boot, seed) if not note else (float("nan"), float("nan"))
        rows.append({"mode": mode, "examples_per_class": k, "r": pearson_r(x, y), "ci_low": low, "ci_high": high,
                     "n_models": len(means), "n_datasets": part["dataset"].nunique(), "note": note})
    return pd.DataFrame(rows, columns=["mode", "examples_per_class", "r", "ci_low", "ci_high", "n_models",
                                       "n_datasets", "note"])


def convergence(table: pd.DataFrame) -> pd.DataFrame:
    """Per model x dataset x mode of the budget study: budgets, best log odds, the 90% threshold and the fewest
    steps reaching it; then a row per model x dataset with both modes: mode 'scratch/finetune', `speedup`."""
    rows = _rows(table, "budgets", ["steps"])
    out = []
    for (model, dataset, mode), part in rows.groupby(["model", "dataset", "mode"], sort=True):
        part = part.sort_values("steps")
        best = part["log_odds"].max()
        threshold = THRESHOLD * best
        reached = part[part["log_odds"] >= threshold] if best > 0 else part.iloc[:0]
        out.append({"model": model, "dataset": dataset, "mode": mode, "budgets": len(part),
                    "max_steps": int(part["steps"].max()), "best_log_odds": best,
                    "threshold_log_odds": threshold if best > 0 else float("nan"),
                    "steps_to_90": int(reached["steps"].min()) if len(reached) else np.nan,
                    "speedup": np.nan,
                    "note": "" if best > 0 else "best log odds <= 0 (at most 50%): 90% of it is undefined"})
    frame = pd.DataFrame(out, columns=["model", "dataset", "mode", "budgets", "max_steps", "best_log_odds",
                                       "threshold_log_odds", "steps_to_90", "speedup", "note"])
    speedups = []
    for (model, dataset), part in frame.groupby(["model", "dataset"], sort=True):
        steps = part.set_index("mode")["steps_to_90"]
        if {"finetune", "scratch"} <= set(steps.index):
            ratio = steps["scratch"] / steps["finetune"]
            speedups.append({"model": model, "dataset": dataset, "mode": "scratch/finetune", "speedup": ratio,
                             "note": "" if np.isfinite(ratio) else "a mode has no steps_to_90"})
    return pd.concat([frame, pd.DataFrame(speedups)], ignore_index=True) if speedups else frame


SIZE_SPLIT = 10_000  # training examples: the paper's split of small and large datasets


def schedule_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Per scratch run of the schedule study: its log odds, fine-tuning's reference log odds and the gap (module
    docstring), with the dataset's training-set size and its size group."""
    rows = table[table["study"] == "schedules"] if "study" in table else table.iloc[:0]
    missing = [c for c in ("schedule", "norm") if c not in table.columns]
    if missing:
        raise TableError(f"results table lacks the schedules column(s) {missing}")
    rows = rows.assign(log_odds=logit(rows["value"]))
    main = table[(table["study"].fillna("main") == "main") & (table["mode"] == "finetune")]
    main = main.assign(log_odds=logit(main["value"])).set_index(["model", "dataset"])["log_odds"]
    tuned = rows[rows["mode"] == "finetune"].set_index(["model", "dataset", "schedule"])["log_odds"]
    studied = set(zip(rows.loc[rows["mode"] == "finetune", "model"], rows.loc[rows["mode"] == "finetune", "dataset"]))
    out = []
    for row in rows[rows["mode"] == "scratch"].itertuples():
        if (row.model, row.dataset, row.schedule) in tuned.index:
            reference, source = tuned[(row.model, row.dataset, row.schedule)], f"finetune at {row.schedule:g}x"
        elif (row.model, row.dataset) in studied:  # never mixed with another reference in one summary point
            reference, source = np.nan, f"no finetune at {row.schedule:g}x in the schedule study: no gap"
        elif (row.model, row.dataset) in main.index:
            reference, source = main[(row.model, row.dataset)], "finetune of the main study (1x)"
        else:
            reference, source = np.nan, "no fine-tuning run of this model and dataset"
        out.append({"model": row.model, "dataset": row.dataset, "norm": row.norm, "schedule": row.schedule,
                    "n_train": row.n_train, "size_group": f"n_train<{SIZE_SPLIT}" if row.n_train < SIZE_SPLIT
                    else f"n_train>={SIZE_SPLIT}", "scratch_log_odds": row.log_odds, "finetune_log_odds": reference,
                    "gap": row.log_odds - reference, "reference": source})
    return pd.DataFrame(out, columns=["model", "dataset", "norm", "schedule", "n_train", "size_group",
                                      "scratch_log_odds", "finetune_log_odds", "gap", "reference"])


def schedule_summary(gaps: pd.DataFrame) -> pd.DataFrame:
    """Per size group, norm and multiple: mean gap over model x dataset, its standard error (NaN for one), count."""
    grouped = gaps.dropna(subset=["gap"]).groupby(["size_group", "norm", "schedule"], sort=True)["gap"]
    out = grouped.agg(mean_gap="mean", n="count", sd="std").reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n"])
    return out.drop(columns="sd")
