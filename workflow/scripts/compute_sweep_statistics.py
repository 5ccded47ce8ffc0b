from transferbench.analysis.statistics import write_sweep_statistics
from transferbench.workflow import job_context

with job_context(snakemake):
    write_sweep_statistics(snakemake.input[0], dict(snakemake.output), seed=snakemake.params.seed,
                           size_groups=snakemake.params.size_groups)
