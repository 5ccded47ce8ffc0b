import pandas as pd

from transferbench.analysis.ablation_figures import plot_regularizers
from transferbench.workflow import job_context

with job_context(snakemake):
    a = snakemake.params.ablation
    plot_regularizers(pd.read_csv(snakemake.input.settings), pd.read_csv(snakemake.input.steps), a["group_tag"],
                      a["setting_tag"], a["order"], snakemake.output.pdf, snakemake.output.png,
                      upstream_label=snakemake.params.upstream_label)
