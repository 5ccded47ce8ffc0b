"""The detection study's statistics (transferbench.detection; rows of study `detection`, one per metric).

Does the paper's correlation hold for detection, and does freezing the backbone change it? Per dataset x detector x
backbone state, Pearson r between ImageNet top-1 and the dataset's primary metric (VOC 2007: voc07_map50; COCO
format: coco_ap) in log odds (the paper's transform; AP is a fraction in [0, 1], clipped as transferbench.analysis.
stats.logit does), with a percentile bootstrap interval over models; and per dataset x detector, the difference
r(frozen) - r(fine-tuned) with its bootstrap interval (models resampled jointly for both states).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferbench.analysis.stats import bootstrap_r, logit, pearson_r, r_note

PRIMARY = ("voc07_map50", "coco_ap")  # a run's own metric; coco_ap50 / coco_ap75 are its companions


def detection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The detection rows: model, dataset, state, detector, metric, value, log odds, imagenet_top1, trainable
    parameters, and whether the metric is the dataset's primary one."""
    rows = table[table["study"].fillna("main") == "detection"]
    if rows.empty:
        raise ValueError("no detection rows in the results table (is the config's detection section on?)")
    out = rows.rename(columns={"mode": "state"})[["dataset", "detector", "state", "model", "metric", "value",
                                                  "imagenet_top1", "trainable_params", "detector_params", "n_train",
                                                  "n_test"]].copy()
    out["log_odds"] = logit(out["value"].to_numpy(dtype=float))
    out["primary"] = out["metric"].isin(PRIMARY)
    return out.sort_values(["dataset", "detector", "state", "model", "metric"], ignore_index=True)


def detection_correlations(summary: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per dataset x detector x state (primary metric): r, its interval, models, note; then per dataset x detector
    the frozen - finetune difference of r (state 'frozen - finetune')."""
    primary = summary[summary["primary"]]
    rows = []
    for (dataset, detector), part in primary.groupby(["dataset", "detector"], sort=True):
        for state, points in part.groupby("state", sort=True):
            x, y = points["imagenet_top1"].to_numpy(float), points["log_odds"].to_numpy(float)
            low, high = bootstrap_r(x, y, n_boot=n_boot, seed=seed)
            rows.append({"dataset": dataset, "detector": detector, "state": state, "metric": points["metric"].iloc[0],
                         "r": pearson_r(x, y), "r_low": low, "r_high": high, "models": len(points),
                         "note": r_note(x, y)})
        wide = part.pivot_table(index="model", columns="state", values=["log_odds", "imagenet_top1"])
        if {"frozen", "finetune"} <= set(part["state"]):
            both = wide.dropna()
            x = both[("imagenet_top1", "frozen")].to_numpy(float)
            frozen, tuned = both[("log_odds", "frozen")].to_numpy(float), both[("log_odds", "finetune")].to_numpy(float)
            difference = pearson_r(x, frozen) - pearson_r(x, tuned)
            low = high = float("nan")
            if len(x) >= 3:
                rng = np.random.default_rng(seed)
                draws = rng.integers(0, len(x), size=(n_boot, len(x)))
                diffs = np.array([pearson_r(x[i], frozen[i]) - pearson_r(x[i], tuned[i]) for i in draws])
                diffs = diffs[np.isfinite(diffs)]
                if len(diffs):
                    low, high = np.quantile(diffs, [0.025, 0.975])
            rows.append({"dataset": dataset, "detector": detector, "state": "frozen - finetune",
                         "metric": part["metric"].iloc[0], "r": difference, "r_low": low, "r_high": high,
                         "models": len(x), "note": r_note(x, frozen) or r_note(x, tuned)})
    return pd.DataFrame(rows, columns=["dataset", "detector", "state", "metric", "r", "r_low", "r_high", "models",
                                       "note"])
