from transferbench.analysis.figures import plot_finetune_vs_scratch
from transferbench.analysis.results import read_table
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_finetune_vs_scratch(read_table(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png)
