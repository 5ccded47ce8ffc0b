from transferbench.train.selection import write_selection
from transferbench.workflow import job_context

with job_context(snakemake):
    write_selection(list(snakemake.input), snakemake.output[0], snakemake.params.sole_point)
