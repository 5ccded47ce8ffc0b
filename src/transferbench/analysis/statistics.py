"""Every statistic of a results table, written to files: correlations.csv, regressions.csv (+ regressions.txt, the
statsmodels summaries), mode_comparison.csv and, when every row of the table has a `predictions` path,
paired_tests.csv.

The table is validated first (transferbench.analysis.results.validate_table: fractions in [0, 1], no empty cells, no
duplicate keys, ...); a problem stops before anything is computed or written, with a message naming the rows.
Relative `predictions` paths are taken relative to `root` (default: the current directory; the workflow writes them
relative to its own directory and its jobs run there). A missing predictions file is named in the error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from transferbench.analysis import reuse, sweeps
from transferbench.analysis.paired_tests import paired_tests
from transferbench.analysis.regression import regressions
from transferbench.analysis.results import TableError, read_table, resolve_predictions, validate_table
from transferbench.analysis.stats import correlations, mode_comparison
from transferbench.atomic import atomic_path

log = logging.getLogger(__name__)
OUTPUTS = {"correlations": "correlations.csv", "regressions": "regressions.csv", "summaries": "regressions.txt",
           "modes": "mode_comparison.csv", "paired": "paired_tests.csv"}


def statistics_files(out_dir) -> dict[str, Path]:
    """{output name: path} of every statistics file in `out_dir` (named as the compute_statistics rule's outputs)."""
    return {name: Path(out_dir) / file for name, file in OUTPUTS.items()}


def _write_csv(frame: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_statistics(results_csv, outputs: dict, n_boot: int = 2000, seed: int = 0, n_perm: int = 2000,
                     root=None) -> dict:
    """Every statistic of a results table, each into its path in `outputs` ({name: path}, names as in OUTPUTS; a
    name left out is not written); returns {name: DataFrame}. Paired tests need a predictions path in every row:
    asked for without them, a TableError; not asked for, skipped."""
    table = validate_table(read_table(results_csv), source=f"results table {results_csv}")
    with_predictions = "predictions" in table and table["predictions"].notna().all()
    if "paired" in outputs and not with_predictions:
        raise TableError(f"results table {results_csv}: paired tests need a `predictions` path in every row")
    if "paired" in outputs:
        table = resolve_predictions(table, Path.cwd() if root is None else root, source=results_csv)
    out = {"correlations": correlations(table, n_boot=n_boot, seed=seed)}
    out["regressions"], summaries = regressions(table)
    out["modes"] = mode_comparison(table)
    if "paired" in outputs:
        log.info("paired tests against the best model per mode and dataset (%d permutations where needed)", n_perm)
        out["paired"] = paired_tests(table, n_perm=n_perm, seed=seed)
    for name, frame in out.items():
        if name in outputs:
            Path(outputs[name]).parent.mkdir(parents=True, exist_ok=True)
            _write_csv(frame, outputs[name])
    if "summaries" in outputs:
        with atomic_path(outputs["summaries"]) as tmp:
            Path(tmp).write_text(summaries or "fewer than 3 models per mode: no regression\n")
    return out


SWEEP_OUTPUTS = {"dataset_size": "dataset_size.csv", "size_correlations": "size_correlations.csv",
                 "convergence": "convergence.csv"}


def write_sweep_statistics(results_csv, outputs: dict, n_boot: int = 2000, seed: int = 0,
                           size_groups=(10000,)) -> dict:
    """The sweeps' statistics (transferbench.analysis.sweeps) of a results table, each into its path in `outputs`:
    dataset_size, size_correlations, few_shot (the dataset-size study's), convergence (the budget study's),
    schedules and schedule_summary (the schedule study's), reuse_points, reuse_summary and reuse_gains (the reuse
    study's, transferbench.analysis.reuse, datasets grouped at `size_groups`); a name left out is not computed."""
    table = read_table(results_csv, study=None)
    out = {}
    if outputs.keys() & {"dataset_size", "size_correlations", "few_shot"}:
        out["dataset_size"] = summary = sweeps.dataset_size_summary(table)
        out["size_correlations"] = sweeps.size_correlations(summary, n_boot=n_boot, seed=seed)
        out["few_shot"] = sweeps.few_shot_table(summary)
    if "convergence" in outputs:
        out["convergence"] = sweeps.convergence(table)
    if "schedules" in outputs:
        out["schedules"] = sweeps.schedule_gaps(table)
        out["schedule_summary"] = sweeps.schedule_summary(out["schedules"])
    if "reuse_points" in outputs:
        out["reuse_points"] = points = reuse.reuse_points(table, size_groups)
        out["reuse_summary"] = reuse.reuse_summary(points)
        out["reuse_gains"] = reuse.reuse_gains(points)
    for name, frame in out.items():
        if name in outputs:
            Path(outputs[name]).parent.mkdir(parents=True, exist_ok=True)
            _write_csv(frame, outputs[name])
    return out
