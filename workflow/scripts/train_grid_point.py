from transferbench.data.splits import DatasetSpec
from transferbench.models.spec import ModelSpec
from transferbench.seeding import derive_seed
from transferbench.train.run import run_training
from transferbench.workflow import job_context

wc = snakemake.wildcards
sweep = [wc.study, wc.variant] if "variant" in wc.keys() else []  # a sweep's run (rules/sweeps.smk)
with job_context(snakemake):
    run_training(wc.mode, ModelSpec.from_config(wc.model, snakemake.params.model),
                 DatasetSpec.from_config(wc.dataset, snakemake.params.dataset), snakemake.input.split,
                 snakemake.params.settings, phase="grid", point=wc.point,
                 seed=derive_seed(snakemake.params.seed, wc.mode, wc.model, wc.dataset, wc.point, *sweep),
                 out_json=snakemake.output[0], checkpoint=snakemake.params.checkpoint,
                 images_file=snakemake.input.images, subset_file=snakemake.input.get("subset"),
                 **snakemake.params.hparams)
