from transferbench.data.image_cache import write_image_cache
from transferbench.data.splits import DatasetSpec
from transferbench.workflow import job_context

wc = snakemake.wildcards
# The worker count comes from the config, not params: it changes no pixel, so it must not be a rerun trigger.
workers = snakemake.config["features"]["num_workers"]
with job_context(snakemake):
    write_image_cache(DatasetSpec.from_config(wc.dataset, snakemake.params.dataset), snakemake.input.split,
                      int(wc.size), wc.interpolation, snakemake.output[0], num_workers=workers)
