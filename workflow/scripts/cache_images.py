from transferbench.datasets import DatasetSpec
from transferbench.image_cache import write_image_cache
from transferbench.workflow import job_context

wc = snakemake.wildcards
with job_context(snakemake):
    write_image_cache(DatasetSpec.from_config(wc.dataset, snakemake.params.dataset), snakemake.input.split,
                      int(wc.size), wc.interpolation, snakemake.output[0], num_workers=snakemake.params.num_workers)
