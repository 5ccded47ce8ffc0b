from transferbench.models.spec import ModelSpec
from transferbench.train.upstream import pretrain_upstream
from transferbench.workflow import job_context

with job_context(snakemake):
    spec = ModelSpec.from_config(snakemake.wildcards.model, snakemake.params.model)
    pretrain_upstream(spec, snakemake.input.data, snakemake.params.settings, snakemake.params.seed,
                      checkpoint_out=snakemake.output.weights, metrics_out=snakemake.output.metrics,
                      resume_checkpoint=snakemake.params.checkpoint)
