import pandas as pd

from transferbench.analysis.protocols import compare, correlations, training_seconds
from transferbench.analysis.results import read_table
from transferbench.atomic import atomic_path, read_json
from transferbench.workflow import job_context

with job_context(snakemake):
    costs = []
    for pair in snakemake.params.pairs:
        points, seconds = training_seconds(pair["grid"], pair["final"])
        bit = read_json(pair["bit"])
        costs.append({"model": pair["model"], "dataset": pair["dataset"], "grid_points": points,
                      "grid_train_s": seconds, "bit_train_s": bit["wall_time_s"],
                      "bit_all_runs_train_s": sum(bit["run_wall_time_s"])})
    table = read_table(snakemake.input.table)
    comparison = compare(table, pd.DataFrame(costs))
    for frame, out in ((comparison, snakemake.output.comparison),
                       (correlations(table, comparison, seed=snakemake.params.seed), snakemake.output.correlations)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
