import pandas as pd

from transferbench.analysis.figures import plot_dataset_size
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_dataset_size(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png,
                      upstream_label=snakemake.params.upstream_label)
