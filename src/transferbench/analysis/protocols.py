"""What BiT-HyperRule's single run costs and gives, against the paper's grid search (issue: cost-accuracy comparison).

Per model x dataset with both a `finetune` row (grid search, selection on val, final fit on train + val) and a `bit`
row (the rule's runs on train + val, the median run's test value):
- accuracy: the difference in log odds, bit minus finetune (positive: the rule did better);
- cost: training seconds as recorded by each job's training loop (`wall_time_s`: the steps, their evaluations and
  checkpoints, not the job's start-up or data caching): the grid search's sum over its grid points and its final
  fit, against one run of the rule (the median run's; the rule needs no search, and its further seeds only measure
  the spread). `time_ratio` = grid / rule. The seconds are of whatever device ran each job: compare runs made on the
  same kind of device (a study on one cluster partition).
- and whether the correlation with ImageNet top-1 holds under both protocols: Pearson r of the models' mean
  transfer log odds over datasets against top-1 (the main study's r, transferbench.analysis.stats.correlations), on
  the models and datasets both protocols have, with its bootstrap interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from transferbench.analysis.stats import bootstrap_r, logit, model_means, pearson_r, r_note
from transferbench.atomic import read_json

PROTOCOLS = {"finetune": "grid search (the paper)", "bit": "BiT-HyperRule"}


def training_seconds(grid_files, final_file) -> tuple[int, float]:
    """(grid points, training seconds of the whole search: every grid point and the final fit)."""
    grid = [read_json(f) for f in grid_files]
    return max(len(grid), 1), sum(r["wall_time_s"] for r in grid) + read_json(final_file)["wall_time_s"]


def read_costs(pairs: list[dict]) -> pd.DataFrame:
    """Per model x dataset (`pairs`: model, dataset, the finetune grid's point files `grid`, its `final` fit, the
    `bit` result): grid points and training seconds of the search, of the rule's median run and of all its runs."""
    rows = []
    for pair in pairs:
        points, seconds = training_seconds(pair["grid"], pair["final"])
        bit = read_json(pair["bit"])
        rows.append({"model": pair["model"], "dataset": pair["dataset"], "grid_points": points,
                     "grid_train_s": seconds, "bit_train_s": bit["wall_time_s"],
                     "bit_all_runs_train_s": sum(bit["run_wall_time_s"])})
    return pd.DataFrame(rows)


def compare(table: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """One row per model x dataset with both protocols (module docstring). `costs`: read_costs's table."""
    wide = table[table["mode"].isin(PROTOCOLS)].pivot_table(index=["model", "dataset"], columns="mode",
                                                            values="value", aggfunc="first")
    if not set(PROTOCOLS) <= set(wide.columns):
        return pd.DataFrame(columns=["model", "dataset", "grid_value", "bit_value", "log_odds_difference",
                                     "grid_points", "grid_train_s", "bit_train_s", "time_ratio"])
    wide = wide.dropna(subset=list(PROTOCOLS)).reset_index()
    top1 = table.groupby("model")["imagenet_top1"].first()
    spread = table[table["mode"] == "bit"].set_index(["model", "dataset"])
    out = pd.DataFrame({"model": wide["model"], "dataset": wide["dataset"],
                        "imagenet_top1": wide["model"].map(top1).to_numpy(),
                        "grid_value": wide["finetune"], "bit_value": wide["bit"]})
    for column in ("value_min", "value_max"):
        if column in spread:
            out["bit_" + column] = [spread[column].get((m, d), np.nan) for m, d in zip(out["model"], out["dataset"])]
    out["log_odds_difference"] = logit(out["bit_value"]) - logit(out["grid_value"])
    out = out.merge(costs, on=["model", "dataset"], how="left")
    out["time_ratio"] = out["grid_train_s"] / out["bit_train_s"]
    return out.sort_values(["dataset", "model"]).reset_index(drop=True)


def correlations(table: pd.DataFrame, pairs: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per protocol: r of mean transfer log odds with top-1 on the model x dataset pairs both protocols have
    (`pairs`: compare's rows), with its interval."""
    keys = pairs[["model", "dataset"]]
    rows = []
    for mode, title in PROTOCOLS.items():
        part = table[table["mode"] == mode].merge(keys, on=["model", "dataset"])
        means = model_means(part) if len(part) else pd.DataFrame(columns=["imagenet_top1", "mean_log_odds"])
        x, y = means["imagenet_top1"].to_numpy(), means["mean_log_odds"].to_numpy()
        low, high = bootstrap_r(x, y, n_boot=n_boot, seed=seed)
        rows.append({"protocol": mode, "title": title, "n_models": len(means),
                     "n_datasets": part["dataset"].nunique(), "r": pearson_r(x, y), "ci_low": low, "ci_high": high,
                     "note": r_note(x, y)})
    return pd.DataFrame(rows)
