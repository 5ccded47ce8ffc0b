from transferbench.models.imagenet_top1 import measure_imagenet_top1
from transferbench.models.spec import ModelSpec
from transferbench.workflow import job_context

with job_context(snakemake):
    s = snakemake.params.settings
    measure_imagenet_top1(ModelSpec.from_config(snakemake.wildcards.model, snakemake.params.model),
                          snakemake.params.imagenet_val, snakemake.output[0], batch_size=s["batch_size"],
                          num_workers=s["num_workers"])
