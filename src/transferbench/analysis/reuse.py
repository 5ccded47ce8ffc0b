"""The reuse study's points (transferbench.sweeps, study `reuse`): transfer log odds against trainable parameters,
from the frozen backbone with heads of growing capacity to full fine-tuning.

Each model x dataset contributes two series over trainable parameters:
- `frozen + head`: the main study's linear probe (head `linear`), then the reuse study's MLP heads on the same
  cached features (`mlp1-w512`, `mlp2-w512`, ...);
- `fine-tuned`: the reuse study's partial fine-tuning (`last1`, `last2`: the last k stages and the head train), then
  the main study's full fine-tuning.
Datasets fall into size groups by their training set (n_train: train + val) at the config's `size_groups`
boundaries ("<= 10,000" and "> 10,000" for [10000]): whether capacity on a frozen backbone pays depends on how much
data the task has.

`reuse_summary` gives per group x model x point the mean log odds over the group's datasets and the mean trainable
parameters; `reuse_gains` gives, per model x dataset x point between the ends (each head, each partial run), its gain
over the linear probe and over full fine-tuning (positive: better). Each point is reported, none picked as "the best"
(picking on test would bias the gain upward). The ends count only on the model x dataset pairs the reuse runs cover
(`sweeps.reuse.models` / `datasets` may name fewer than the study), so every line of the figure averages the same
datasets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferbench.analysis.stats import logit

SERIES = ("frozen + head", "fine-tuned")


def size_group(n_train: int, boundaries) -> str:
    """'<= 10,000' / '10,001-50,000' / '> 50,000' style names of the groups `boundaries` make."""
    edges = sorted(boundaries)
    for i, edge in enumerate(edges):
        if n_train <= edge:
            return f"<= {edge:,}" if i == 0 else f"{edges[i - 1] + 1:,}-{edge:,}"
    return f"> {edges[-1]:,}" if edges else "all"


def reuse_points(table: pd.DataFrame, boundaries) -> pd.DataFrame:
    """One row per model x dataset x point of either series: series, point (head or trainable stages), trainable
    parameters, value, log odds, size group. `table` is the whole results table (every study)."""
    study = table["study"].fillna("main")
    main, reuse = table[study == "main"], table[study == "reuse"]
    covered = set(zip(reuse["model"], reuse["dataset"]))
    n_train = main.groupby("dataset")["n_train"].max()  # a dataset's whole training set, before the filter below
    if covered:
        main = main[[pair in covered for pair in zip(main["model"], main["dataset"])]]
    frozen = pd.concat([main[main["mode"] == "linear"].assign(point="linear"),
                        reuse[reuse["mode"] == "head"].assign(point=lambda t: t["head"])])
    partial = reuse[reuse["mode"] == "finetune"]
    tuned = pd.concat([partial.assign(point=[f"last {int(k)}" for k in partial["trainable_stages"]]),
                       main[main["mode"] == "finetune"].assign(point="all")])
    points = pd.concat([frozen.assign(series=SERIES[0]), tuned.assign(series=SERIES[1])], ignore_index=True)
    if points["trainable_params"].isna().any():
        missing = points[points["trainable_params"].isna()][["model", "dataset", "mode", "point"]].head(3)
        raise ValueError("results without trainable_params (rerun their jobs to record it): "
                         + "; ".join(" ".join(map(str, r)) for r in missing.itertuples(index=False)))
    # a dataset's group from its full training set (the main study's rows), the same for every series
    points["size_group"] = points["dataset"].map(lambda d: size_group(int(n_train[d]), boundaries))
    points["log_odds"] = logit(points["value"].to_numpy(dtype=float))
    columns = ["size_group", "dataset", "model", "imagenet_top1", "series", "point", "trainable_params", "value",
               "log_odds", "metric"]
    return points[columns].sort_values(["size_group", "dataset", "model", "series", "trainable_params"],
                                       ignore_index=True)


def reuse_summary(points: pd.DataFrame) -> pd.DataFrame:
    """Per size group x model x series x point: mean log odds and mean trainable parameters over the group's
    datasets (datasets: how many)."""
    return (points.groupby(["size_group", "model", "series", "point"], sort=False)
            .agg(trainable_params=("trainable_params", "mean"), log_odds=("log_odds", "mean"),
                 datasets=("dataset", "nunique"), imagenet_top1=("imagenet_top1", "first"))
            .reset_index().sort_values(["size_group", "model", "series", "trainable_params"], ignore_index=True))


def reuse_gains(points: pd.DataFrame) -> pd.DataFrame:
    """Per model x dataset x point between the ends (each head, each partial run): its log odds and its gain over the
    linear probe (`minus_linear`) and over full fine-tuning (`minus_full`) of the same model and dataset."""
    ends = points[points["point"].isin(["linear", "all"])].pivot_table(
        index=["model", "dataset"], columns="point", values="log_odds")
    middle = points[~points["point"].isin(["linear", "all"])]
    rows = []
    for row in middle.itertuples():
        linear = ends["linear"].get((row.model, row.dataset), np.nan) if "linear" in ends else np.nan
        full = ends["all"].get((row.model, row.dataset), np.nan) if "all" in ends else np.nan
        rows.append({"model": row.model, "dataset": row.dataset, "size_group": row.size_group, "series": row.series,
                     "point": row.point, "trainable_params": row.trainable_params, "log_odds": row.log_odds,
                     "minus_linear": row.log_odds - linear, "minus_full": row.log_odds - full})
    return pd.DataFrame(rows, columns=["model", "dataset", "size_group", "series", "point", "trainable_params",
                                       "log_odds", "minus_linear", "minus_full"])
