from transferbench.data.splits import DatasetSpec, make_split
from transferbench.workflow import job_context

with job_context(snakemake):
    spec = DatasetSpec.from_config(snakemake.wildcards.dataset, snakemake.params.dataset)
    make_split(spec, snakemake.params.seed).save(snakemake.output[0])
