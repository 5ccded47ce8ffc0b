import pandas as pd

from transferbench.analysis.results import read_table
from transferbench.analysis.sweep_figures import plot_convergence
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_convergence(read_table(snakemake.input.results, study=None), pd.read_csv(snakemake.input.convergence),
                     snakemake.output.pdf, snakemake.output.png)
