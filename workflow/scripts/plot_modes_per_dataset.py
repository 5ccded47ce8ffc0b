from transferbench.analysis.figures import plot_modes_per_dataset
from transferbench.analysis.results import read_table
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_modes_per_dataset(read_table(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png)
