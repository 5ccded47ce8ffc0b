from transferbench.train.selection import median_run
from transferbench.workflow import job_context

with job_context(snakemake):
    median_run(snakemake.input.results, snakemake.input.predictions, snakemake.output.result,
               snakemake.output.predictions)
