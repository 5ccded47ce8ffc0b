"""Statistics of the study, on log odds (Kornblith et al. 2019, section 3; DESIGN section 3).

Conventions:
- logit(p) = log(p / (1 - p)) with p clipped to [EPS, 1 - EPS], EPS = 1e-4 (a perfect score counts as 99.99%).
- The headline r, per mode: Pearson r between ImageNet top-1 (percent, as reported) and the mean over datasets of
  the transfer log odds, one point per model. r is invariant to the affine rescaling of top-1.
- 95% intervals: percentile bootstrap over models (resampling models with replacement), seeded.
- Regressions with dataset fixed effects (OLS on log odds, binomial GLM): transferbench.regression.
- Models not significantly worse than the best per dataset (paired tests, Holm): transferbench.paired_tests.
- Mode comparison: in how many model x dataset pairs one mode beats another (the paper: fine-tuning beat the
  linear probe in 179 of 192); equal values count as ties, not wins.

- An r needs at least 3 models with different upstream top-1 and transfer: otherwise it is NaN and the row's
  `note` says why (correlations.csv).

Run on any results table: `python -m transferbench.stats --results RESULTS.csv --out DIR` writes
correlations.csv, regressions.csv (+ regressions.txt, the statsmodels summaries), mode_comparison.csv and, when
every row of the table has a `predictions` path, paired_tests.csv. The table is validated first
(transferbench.results.validate_table: fractions in [0, 1], no empty cells, no duplicate keys, ...); a problem stops
the command with a one-line message that names the rows. Relative `predictions` paths are taken relative to
`--root` (default: the current directory); the workflow writes them relative to its own directory, so run from
there or pass `--root WORKFLOW_DIR`. A missing predictions file is named in the error.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import atomic_path
from .results import TableError, read_table, resolve_predictions, validate_table

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
    """For each ordered pair of modes (finetune vs linear, finetune vs scratch, scratch vs linear): over the
    model x dataset pairs that have both, how often the first is higher, lower or equal."""
    wide = table.pivot_table(index=["model", "dataset"], columns="mode", values="value")
    rows = []
    for a, b in (("finetune", "linear"), ("finetune", "scratch"), ("scratch", "linear")):
        if a in wide and b in wide:
            both = wide[[a, b]].dropna()
            rows.append({"mode_a": a, "mode_b": b, "a_wins": int((both[a] > both[b]).sum()),
                         "b_wins": int((both[a] < both[b]).sum()), "ties": int((both[a] == both[b]).sum()),
                         "pairs": len(both)})
    return pd.DataFrame(rows, columns=["mode_a", "mode_b", "a_wins", "b_wins", "ties", "pairs"])


def _write_csv(frame: pd.DataFrame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_statistics(results_csv, out_dir, n_boot: int = 2000, seed: int = 0, n_perm: int = 2000,
                     root=None) -> dict:
    """Every statistic of a results table into `out_dir`; returns {name: DataFrame}.

    The table is validated first (transferbench.results.validate_table; TableError before anything is computed or
    written). Relative `predictions` paths are taken relative to `root` (default: the current directory, which is
    the workflow's directory in its jobs); a missing file is a TableError naming it. Paired tests run when every
    row has a predictions path; otherwise the log says how many rows lack one and they are skipped."""
    from .paired_tests import paired_tests
    from .regression import regressions

    table = validate_table(read_table(results_csv), source=f"results table {results_csv}")
    with_predictions = "predictions" in table and table["predictions"].notna().all()
    if with_predictions:
        table = resolve_predictions(table, Path.cwd() if root is None else root, source=results_csv)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = {"correlations": correlations(table, n_boot=n_boot, seed=seed)}
    out["regressions"], summaries = regressions(table)
    out["mode_comparison"] = mode_comparison(table)
    if with_predictions:
        log.info("paired tests against the best model per mode and dataset (%d permutations where needed)", n_perm)
        out["paired_tests"] = paired_tests(table, n_perm=n_perm, seed=seed)
    elif "predictions" in table and table["predictions"].notna().any():
        log.warning("%d of %d rows of %s have no predictions path: paired tests skipped",
                    table["predictions"].isna().sum(), len(table), results_csv)
    else:
        log.info("no per-example predictions in %s: paired tests skipped", results_csv)
    for name, frame in out.items():
        _write_csv(frame, out_dir / f"{name}.csv")
    with atomic_path(out_dir / "regressions.txt") as tmp:
        Path(tmp).write_text(summaries or "fewer than 3 models per mode: no regression\n")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m transferbench.stats", description=__doc__.split("\n")[0],
                                     epilog=__doc__.split("\n\n")[-1].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="tidy results table (results/tables/results.csv)")
    parser.add_argument("--out", required=True, help="output folder for the statistics (CSV files, regressions.txt)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples for every interval")
    parser.add_argument("--n-perm", type=int, default=2000, help="permutations of the paired permutation tests")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None,
                        help="directory that relative `predictions` paths start from (default: the current "
                             "directory); the workflow writes them relative to its own directory, so pass that")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        out = write_statistics(args.results, args.out, args.n_boot, args.seed, args.n_perm, root=args.root)
    except (TableError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        message = " ".join(str(error).split())  # one line
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    for name, frame in out.items():
        print(f"== {name} ==\n{frame.to_string(index=False)}\n")


if __name__ == "__main__":
    main()
