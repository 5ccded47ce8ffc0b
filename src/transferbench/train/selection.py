"""Choosing the best grid point of a training mode on validation.

Rule: the highest validation metric among the runs that did not diverge; ties go to the stronger regularization
(larger weight decay), then to the smaller learning rate (the more conservative update). If every point diverged,
selection fails with the list of runs, since no final fit can be made.
"""

from __future__ import annotations

from transferbench.atomic import read_json, write_json


def select_grid_point(results: dict[str, dict]) -> str:
    """Name of the chosen point from {point name: grid-point JSON}."""
    usable = {name: r for name, r in results.items() if not r["diverged"]}
    if not usable:
        raise ValueError(f"every grid point diverged ({', '.join(sorted(results))}); widen the grid to smaller "
                         "learning rates")
    return max(usable, key=lambda n: (usable[n]["value"], usable[n]["weight_decay"], -usable[n]["lr"]))


def write_selection(grid_files, out_json) -> dict:
    results = {}
    for path in grid_files:
        r = read_json(path)
        results[r["point"]] = r
    chosen = select_grid_point(results)
    selection = {"chosen": chosen, "lr": results[chosen]["lr"], "weight_decay": results[chosen]["weight_decay"],
                 "val_metric": results[chosen]["value"],
                 "grid": {n: {"value": r["value"], "diverged": r["diverged"]} for n, r in sorted(results.items())}}
    write_json(out_json, selection)
    return selection
