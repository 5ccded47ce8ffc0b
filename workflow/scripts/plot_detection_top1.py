import pandas as pd

from transferbench.analysis.detection_figures import plot_detection_top1
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_detection_top1(pd.read_csv(snakemake.input.summary), pd.read_csv(snakemake.input.correlations),
                        snakemake.output.pdf, snakemake.output.png, snakemake.params.upstream_label)
