import pandas as pd

from transferbench.analysis.sweep_figures import plot_dataset_size
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_dataset_size(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png)
