import pandas as pd

from transferbench.analysis.reuse_figures import plot_reuse
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_reuse(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png)
