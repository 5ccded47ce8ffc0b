import pandas as pd

from transferbench.analysis.feature_space_figures import plot_class_separation
from transferbench.analysis.results import read_table
from transferbench.workflow import job_context

with job_context(snakemake):
    plot_class_separation(pd.read_csv(snakemake.input.space), read_table(snakemake.input.results),
                          snakemake.output.pdf, snakemake.output.png, upstream_label=snakemake.params.upstream_label,
                          mode=snakemake.params.mode, ablation=snakemake.params.ablation)
