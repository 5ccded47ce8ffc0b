"""`python -m transferbench.analysis --results RESULTS.csv --out DIR`: the statistics of any results table in the
tidy format (one row per model x dataset x mode), written to DIR (transferbench.analysis.statistics)."""

from __future__ import annotations

import argparse
import logging

import pandas as pd

from transferbench.analysis import statistics
from transferbench.analysis.results import TableError


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m transferbench.analysis", description=__doc__.split("\n")[0],
                                     epilog=statistics.__doc__.split("\n\n", 1)[1].strip(),
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
        outputs = statistics.statistics_files(args.out)
        table = pd.read_csv(args.results)
        if "predictions" not in table or table["predictions"].isna().any():  # paired tests need every row's
            del outputs["paired"]
            if "predictions" in table and table["predictions"].notna().any():
                logging.warning("%d of %d rows of %s have no predictions path: paired tests skipped",
                                table["predictions"].isna().sum(), len(table), args.results)
        out = statistics.write_statistics(args.results, outputs, args.n_boot, args.seed, args.n_perm, root=args.root)
    except (TableError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        message = " ".join(str(error).split())  # one line
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    for name, frame in out.items():
        print(f"== {name} ==\n{frame.to_string(index=False)}\n")


if __name__ == "__main__":
    main()
