"""Choosing the best grid point of a training mode on validation; and the bit mode's reported run, the median of
its seeds' (median_run).

Rule: the highest validation metric among the runs that did not diverge; ties go to the stronger regularization
(larger weight decay), then to the smaller learning rate (the more conservative update). If every point diverged,
selection fails with the list of runs, since no final fit can be made. A grid of one point (a fixed recipe such as
BiT-HyperRule, or a sweep's single setting) has nothing to choose from: the workflow runs no grid job for it (a
validation score that chooses nothing would cost a training run), and the selection names that point with
`validated` false and no validation metric.
"""

from __future__ import annotations

import shutil

import numpy as np

from transferbench.atomic import atomic_path, read_json, write_json


def select_grid_point(results: dict[str, dict]) -> str:
    """Name of the chosen point from {point name: grid-point JSON}."""
    usable = {name: r for name, r in results.items() if not r["diverged"]}
    if not usable:
        raise ValueError(f"every grid point diverged ({', '.join(sorted(results))}); widen the grid to smaller "
                         "learning rates")
    return max(usable, key=lambda n: (usable[n]["value"], usable[n]["weight_decay"], -usable[n]["lr"]))


def write_selection(grid_files, out_json, grid: dict | None = None) -> dict:
    """Write the choice among the grid points' results (`grid_files`); with no results and a `grid` ({point name:
    {'lr', 'weight_decay'}}) of one point, that point, unvalidated."""
    if not grid_files:
        if not grid or len(grid) != 1:
            raise ValueError(f"no grid results to select from, and the grid has {len(grid or {})} points (a "
                             "selection without grid jobs is only for a grid of one point)")
        (chosen, point), = grid.items()
        selection = {"chosen": chosen, "lr": point["lr"], "weight_decay": point["weight_decay"], "val_metric": None,
                     "validated": False, "grid": {}}
        write_json(out_json, selection)
        return selection
    results = {}
    for path in grid_files:
        r = read_json(path)
        results[r["point"]] = r
    chosen = select_grid_point(results)
    selection = {"chosen": chosen, "lr": results[chosen]["lr"], "weight_decay": results[chosen]["weight_decay"],
                 "val_metric": results[chosen]["value"], "validated": True,
                 "grid": {n: {"value": r["value"], "diverged": r["diverged"]} for n, r in sorted(results.items())}}
    write_json(out_json, selection)
    return selection


def median_run(run_files: list, prediction_files: list, out_json, out_predictions) -> dict:
    """The bit mode's result (transferbench.train.bit): the JSON and predictions of the run whose test value is the
    median (with an even number of runs, the lower middle one), with every run's value and training time."""
    runs = [read_json(f) for f in run_files]
    order = np.argsort([r["value"] for r in runs], kind="stable")
    chosen = int(order[(len(runs) - 1) // 2])
    summary = dict(runs[chosen])
    summary.update({"runs": len(runs), "median_run": runs[chosen]["run"],
                    "run_values": [r["value"] for r in runs], "value_min": min(r["value"] for r in runs),
                    "value_max": max(r["value"] for r in runs),
                    "run_wall_time_s": [r["wall_time_s"] for r in runs]})
    with atomic_path(out_predictions) as tmp:
        shutil.copyfile(prediction_files[chosen], tmp)
    write_json(out_json, summary)
    return summary
