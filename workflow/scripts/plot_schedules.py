import pandas as pd

from transferbench.analysis.sweep_figures import plot_schedules
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_schedules(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png)
