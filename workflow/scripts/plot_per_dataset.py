import pandas as pd

from transferbench.analysis.figures import plot_per_dataset
from transferbench.analysis.results import read_table
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_per_dataset(read_table(snakemake.input.results), snakemake.output.pdf, snakemake.output.png,
                     upstream_label=snakemake.params.upstream_label, not_worse=pd.read_csv(snakemake.input.paired))
