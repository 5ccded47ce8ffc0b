import pandas as pd

from transferbench.analysis.detection_figures import plot_detection_capacity
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_detection_capacity(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png)
