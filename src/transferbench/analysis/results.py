"""The tidy results table: one row per model x dataset x mode, and one per run of a sweep.

Columns: model, dataset, mode, metric, value (fraction in [0, 1]), imagenet_top1 (percent; the demo's upstream
top-1), n_train (train + val of the final fit; a subset run: the subset), n_test, and predictions (path of the
per-example test scores, for the paired tests; optional in tables from elsewhere). The workflow writes predictions
paths relative to the workflow's directory (where its jobs run).

The sweeps' axes are columns too (transferbench.sweeps): `study` (main: the study matrix; dataset_size, budgets,
schedules), `examples_per_class` and `draw` (dataset_size rows; `all` is recorded as the subset's largest class),
`steps` (training steps of a finetune, scratch, head or detection row; empty for linear), `schedule` and `norm`
(schedules rows: the multiple of the mode's steps and the normalization). `head`, `trainable_stages` and
`trainable_params` say what trained (REUSE_COLUMNS: the reuse study's heads and partial fine-tuning, and the main
study's linear and finetune rows, its two ends); `detector` names a detection row's detector (study detection: one
row per metric, mode the backbone state). The bit mode's rows (transferbench.train.bit) add `runs`
(seeds; the value is their median run's) and `value_min` / `value_max` over them. They are optional: a table without
`study` is all main rows.
The main study's statistics and figures read the main rows only (`read_table`).

`validate_table` checks a table before any statistic is computed; each problem is an error (`TableError`) whose
message names the rows or columns and says what would be right. Nothing is dropped silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from transferbench.atomic import atomic_path, read_json

COLUMNS = ["model", "dataset", "mode", "metric", "value", "imagenet_top1", "n_train", "n_test"]
OPTIONAL = ["predictions"]
SWEEP_COLUMNS = ["study", "examples_per_class", "draw", "steps", "schedule", "norm"]
RUN_COLUMNS = ["runs", "value_min", "value_max"]  # the bit mode's: runs (seeds) behind the median value, their range
# what trains on top of / inside the backbone: the head (linear, mlp2-w512), the trainable stages of a partial
# fine-tuning run (empty: all), the trainable parameters (transferbench.probe.heads, transferbench.models.stages)
REUSE_COLUMNS = ["head", "trainable_stages", "trainable_params"]
# the detection rows' detector capacity (transferbench.detection.plan.capacity_name) and its own trainable parameters
# (FPN, RPN and box head: the backbone's are in trainable_params with them)
DETECTION_COLUMNS = ["detector", "detector_params"]
MAIN = "main"
KEY = ["model", "dataset", "mode"]
NUMERIC = ["value", "imagenet_top1", "n_train", "n_test"]
SHOWN = 4  # rows named in one message; the rest are counted


class TableError(ValueError):
    """A results table the statistics cannot use. The message is one line: what is wrong, where, what is right."""


def result_row(model: str, dataset: str, mode: str, result_file, imagenet_top1: float, n_train: int,
               predictions: str | None = None, study: str = MAIN, examples_per_class: int | None = None,
               draw: int | None = None, tags: dict | None = None, schedule: float | None = None,
               norm: str | None = None) -> dict:
    """One row; `tags`: the model's free labels (config models.<name>.tags), a column each."""
    r = read_json(result_file)
    n_test = r.get("n_test", r.get("n_eval"))
    return {"model": model, "dataset": dataset, "mode": mode, "metric": r["metric"], "value": r["value"],
            "imagenet_top1": imagenet_top1, "n_train": n_train, "n_test": n_test, "study": study,
            "examples_per_class": examples_per_class, "draw": draw, "steps": r.get("steps"), "schedule": schedule,
            "norm": norm, "runs": r.get("runs"), "value_min": r.get("value_min"), "value_max": r.get("value_max"),
            "head": r.get("head"), "trainable_stages": r.get("trainable_stages"),
            "trainable_params": r.get("trainable_params"),
            **(tags or {}), "predictions": predictions}


def detection_rows(model: str, dataset: str, state: str, detector: str, result_file, imagenet_top1: float,
                   predictions: str | None = None, tags: dict | None = None) -> list[dict]:
    """The rows of one detection run (study `detection`, mode: the backbone state): one per metric it reports (VOC
    2007: voc07_map50; COCO: coco_ap, coco_ap50, coco_ap75); n_train counts the training images with boxes."""
    r = read_json(result_file)
    return [{"model": model, "dataset": dataset, "mode": state, "metric": metric, "value": value,
             "imagenet_top1": imagenet_top1, "n_train": r["n_train"], "n_test": r["n_eval"], "study": "detection",
             "steps": r.get("steps"), "trainable_params": r.get("trainable_params"), "detector": detector,
             "detector_params": r.get("detector_params"),
             **(tags or {}), "predictions": predictions}
            for metric, value in r["metrics"].items()]


def write_table(rows: list[dict], out_csv) -> pd.DataFrame:
    """The rows as the table: the main study's first (by mode, dataset, model), then each sweep's. The models' tag
    columns come after the sweep columns (empty for a model without that tag)."""
    own = COLUMNS + SWEEP_COLUMNS + RUN_COLUMNS + REUSE_COLUMNS + DETECTION_COLUMNS
    tag_columns = list(dict.fromkeys(k for row in rows for k in row if k not in set(own + OPTIONAL)))
    table = pd.DataFrame(rows, columns=own + tag_columns + OPTIONAL)
    for column in ("examples_per_class", "draw", "steps", "runs", "trainable_stages", "trainable_params",
                   "detector_params"):
        table[column] = table[column].astype("Int64")  # integers, empty where a row has none
    table = table.assign(_sweep=table["study"] != MAIN).sort_values(
        ["_sweep", "study", "mode", "dataset", "model", "examples_per_class", "draw", "steps", "norm", "schedule",
         "detector", "metric"])
    table = table.drop(columns="_sweep").reset_index(drop=True)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return table


def read_table(path, study: str | None = MAIN) -> pd.DataFrame:
    """The table's rows of `study` (default: the main study; None: every row). A table without a `study` column
    is all main rows."""
    table = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise TableError(f"results table {path} lacks columns {missing}; expected at least {COLUMNS}")
    if study is None:
        return table
    rows = table["study"].fillna(MAIN) == study if "study" in table else pd.Series(study == MAIN, index=table.index)
    return table[rows].reset_index(drop=True)


def _row_names(table: pd.DataFrame, mask, column: str | None = None) -> str:
    """'(m, d, mode)' for the first rows of `mask` (row numbers where a key is empty), with the column's value."""
    rows = table[np.asarray(mask, dtype=bool)]
    names = []
    for index, row in rows.head(SHOWN).iterrows():
        key = [row[k] for k in KEY]
        name = f"({', '.join(map(str, key))})" if all(pd.notna(k) for k in key) else f"row {index}"
        if column:
            value = row[column]
            shown = f"{value:g}" if isinstance(value, (int, float, np.number)) else repr(value)
            names.append(f"{shown} in {name}")
        else:
            names.append(name)
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return ", ".join(names) + more


def validate_table(table: pd.DataFrame, source="results table") -> pd.DataFrame:
    """The table with numeric columns as numbers, or TableError listing every problem found (one line, '; ').

    Errors (none of these is excluded silently: the user decides, by editing the table, what to leave out):
    - a required column missing (COLUMNS);
    - an empty or NaN cell in a required column (a missing result: drop its row, or the model, on purpose);
    - text in a numeric column (value, imagenet_top1, n_train, n_test);
    - `value` outside [0, 1] (values are fractions; percent is named as such: divide by 100);
    - `imagenet_top1` outside [0, 100], or every value <= 1 (it is percent: fractions are to be multiplied by 100);
    - `n_train` or `n_test` below 1;
    - a (model, dataset, mode) key on more than one row;
    - a model with different imagenet_top1 on different rows, a dataset with different n_train;
    - within a mode, a model lacking a dataset that other models have (the headline r averages each model's log
      odds over the datasets: every model needs the same datasets).
    Fewer than 3 models for an r is not an error: that r is NaN and its row in correlations.csv says why (`note`).
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise TableError(f"{source} lacks columns {missing}; expected at least {COLUMNS} (and optionally {OPTIONAL})")
    table = table.reset_index(drop=True).copy()
    problems = []
    for column in COLUMNS:
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if empty.any():
            problems.append(f"column '{column}' is empty or NaN in {int(empty.sum())} row(s): "
                            f"{_row_names(table, empty)}; every row needs it (drop rows without a result on purpose)")
    for column in NUMERIC:
        numbers = pd.to_numeric(table[column], errors="coerce")
        text = numbers.isna() & table[column].notna() & (table[column].astype(str).str.strip() != "")
        if text.any():
            problems.append(f"column '{column}' holds text {_row_names(table, text, column)}: it takes numbers"
                            + (" (fractions, no % sign)" if column == "value" else ""))
        table[column] = numbers
    value, top1 = table["value"], table["imagenet_top1"]
    outside = (value < 0) | (value > 1)
    if outside.any():
        hint = "divide percent by 100" if ((value[outside] > 1) & (value[outside] <= 100)).all() else "check them"
        problems.append(f"column 'value' holds {_row_names(table, outside, 'value')}: values are fractions in [0, 1]; "
                        f"{hint}")
    outside = (top1 < 0) | (top1 > 100)
    if outside.any():
        problems.append(f"column 'imagenet_top1' holds {_row_names(table, outside, 'imagenet_top1')}: it is percent, "
                        "in [0, 100]")
    elif top1.notna().any() and (top1.dropna() <= 1).all():
        problems.append(f"column 'imagenet_top1' holds only values <= 1 (largest {top1.max():g}): it is percent "
                        "(76.1 for 76.1%), not a fraction; multiply by 100")
    for column in ("n_train", "n_test"):
        low = table[column] < 1
        if low.any():
            problems.append(f"column '{column}' holds {_row_names(table, low, column)}: it counts examples, >= 1")
    duplicated = table.duplicated(KEY, keep=False) & table[KEY].notna().all(axis=1)
    if duplicated.any():
        keys = table.loc[duplicated, KEY].drop_duplicates()
        problems.append(f"{len(keys)} (model, dataset, mode) key(s) on more than one row: "
                        f"{_row_names(keys, np.ones(len(keys)))}; keep one row per key")
    for key, column in (("model", "imagenet_top1"), ("dataset", "n_train")):
        values = table.dropna(subset=[column]).groupby(key)[column].unique()
        differing = values[values.map(len) > 1]
        if len(differing):
            names = ", ".join(f"{k} ({', '.join(f'{v:g}' for v in sorted(vs))})" for k, vs in differing[:SHOWN].items())
            problems.append(f"column '{column}' differs between rows of one {key}: {names}; it is one number per "
                            f"{key}")
    for mode, part in table.dropna(subset=KEY).groupby("mode", sort=True):
        datasets = set(part["dataset"])
        lacking = {m: sorted(datasets - set(d)) for m, d in part.groupby("model")["dataset"]}
        lacking = {m: d for m, d in lacking.items() if d}
        if lacking:
            names = ", ".join(f"{m} lacks {d}" for m, d in list(lacking.items())[:SHOWN])
            more = f" and {len(lacking) - SHOWN} more models" if len(lacking) > SHOWN else ""
            problems.append(f"mode '{mode}': {names}{more}; every model needs every dataset of its mode (the mean "
                            "over datasets would compare models on different datasets): add the rows or drop the "
                            "model's or the dataset's rows of that mode")
    if problems:
        raise TableError(f"{source}: " + "; ".join(problems))
    return table


def resolve_predictions(table: pd.DataFrame, root, source=None) -> pd.DataFrame:
    """The table with its `predictions` paths absolute: a relative path is taken relative to `root` (the workflow
    writes them relative to its own directory). TableError names the files that do not exist; when they exist
    under a folder above the table (`source`), the message says which `root` to use."""
    root = Path(root).resolve()
    paths = [Path(p) if Path(p).is_absolute() else root / p for p in table["predictions"]]
    missing = [(given, path) for given, path in zip(table["predictions"], paths) if not path.is_file()]
    if missing:
        named = ", ".join(str(path) for _, path in missing[:SHOWN])
        more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        hint = "pass --root, the directory the relative paths start from (the workflow's directory)"
        if source is not None and not Path(missing[0][0]).is_absolute():
            found = [folder for folder in Path(source).resolve().parents if (folder / missing[0][0]).is_file()]
            if found:
                hint = f"they are under {found[0]}: pass --root {found[0]}"
        raise TableError(f"{len(missing)} predictions file(s) of {source or 'the results table'} not found: "
                         f"{named}{more}; relative paths are taken relative to {root}; {hint}")
    return table.assign(predictions=[str(p) for p in paths])
