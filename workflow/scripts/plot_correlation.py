from transferbench.analysis.figures import plot_correlation
from transferbench.analysis.results import read_table
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_correlation(read_table(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png,
                     upstream_label=snakemake.params.upstream_label)
