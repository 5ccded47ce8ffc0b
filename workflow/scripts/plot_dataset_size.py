import pandas as pd

from transferbench.figures import plot_dataset_size, upstream_label
from transferbench.workflow import job_context

with job_context(snakemake):
    # the rule may pass the label as the other figure rules do; else the same choice from the config
    label = getattr(snakemake.params, "upstream_label", None) or upstream_label(snakemake.config)
    plot_dataset_size(pd.read_csv(snakemake.input[0]), snakemake.output.pdf, snakemake.output.png,
                      upstream_label=label)
