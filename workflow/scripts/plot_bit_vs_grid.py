import pandas as pd

from transferbench.analysis.protocol_figures import plot_bit_vs_grid
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_bit_vs_grid(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png,
                     snakemake.params.upstream_label)
