"""The tidy results table: one row per model x dataset x mode.

Columns: model, dataset, mode, metric, value (fraction in [0, 1]), imagenet_top1 (percent; the demo's upstream
top-1), n_train (train + val of the final fit), n_test, and predictions (path of the per-example test scores, for
the paired tests; optional in tables from elsewhere).
"""

from __future__ import annotations

import pandas as pd

from .atomic import atomic_path, read_json

COLUMNS = ["model", "dataset", "mode", "metric", "value", "imagenet_top1", "n_train", "n_test"]
OPTIONAL = ["predictions"]


def result_row(model: str, dataset: str, mode: str, result_file, imagenet_top1: float, n_train: int,
               predictions: str | None = None) -> dict:
    r = read_json(result_file)
    n_test = r.get("n_test", r.get("n_eval"))
    return {"model": model, "dataset": dataset, "mode": mode, "metric": r["metric"], "value": r["value"],
            "imagenet_top1": imagenet_top1, "n_train": n_train, "n_test": n_test, "predictions": predictions}


def write_table(rows: list[dict], out_csv) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS + OPTIONAL).sort_values(["mode", "dataset", "model"])
    table = table.reset_index(drop=True)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table


def read_table(path) -> pd.DataFrame:
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"results table {path} lacks columns {missing}; expected at least {COLUMNS}")
    return table
