from transferbench.analysis.protocols import compare, correlations, read_costs
from transferbench.analysis.results import read_table
from transferbench.atomic import atomic_path
from transferbench.workflow import job_context

with job_context(snakemake):
    table = read_table(snakemake.input.table)
    comparison = compare(table, read_costs(snakemake.params.pairs))
    for frame, out in ((comparison, snakemake.output.comparison),
                       (correlations(table, comparison, seed=snakemake.params.seed), snakemake.output.correlations)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
