from transferbench.atomic import read_json
from transferbench.data.splits import DatasetSpec
from transferbench.models.spec import ModelSpec
from transferbench.seeding import derive_seed
from transferbench.train.run import run_training
from transferbench.workflow import job_context

wc = snakemake.wildcards
sweep = [wc.study, wc.variant] if "variant" in wc.keys() else []  # a sweep's run (rules/sweeps.smk)
with job_context(snakemake):
    chosen = read_json(snakemake.input.selection)
    run_training(wc.mode, ModelSpec.from_config(wc.model, snakemake.params.model),
                 DatasetSpec.from_config(wc.dataset, snakemake.params.dataset), snakemake.input.split,
                 snakemake.params.settings, lr=chosen["lr"], weight_decay=chosen["weight_decay"], phase="final",
                 point=chosen["chosen"],
                 seed=derive_seed(snakemake.params.seed, wc.mode, wc.model, wc.dataset, "final", *sweep),
                 out_json=snakemake.output.result, checkpoint=snakemake.params.checkpoint,
                 images_file=snakemake.input.images, subset_file=snakemake.input.get("subset"),
                 predictions_out=snakemake.output.predictions)
