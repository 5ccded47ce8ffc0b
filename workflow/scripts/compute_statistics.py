from pathlib import Path

from transferbench.stats import write_statistics
from transferbench.workflow import job_context

with job_context(snakemake):
    write_statistics(snakemake.input[0], Path(snakemake.output.correlations).parent, seed=snakemake.params.seed)
