from transferbench.data.splits import DatasetSpec
from transferbench.models.spec import ModelSpec
from transferbench.seeding import derive_seed
from transferbench.train.bit import run_bit
from transferbench.workflow import job_context

wc = snakemake.wildcards
settings = snakemake.params.settings
with job_context(snakemake):
    run_bit(ModelSpec.from_config(wc.model, snakemake.params.model),
            DatasetSpec.from_config(wc.dataset, snakemake.params.dataset), snakemake.input.split, settings["bit"],
            settings["image_side"], settings["largest"], run=int(wc.run),
            seed=derive_seed(snakemake.params.seed, "bit", wc.model, wc.dataset, int(wc.run)),
            out_json=snakemake.output.result, predictions_out=snakemake.output.predictions,
            checkpoint=snakemake.params.checkpoint, images_file=snakemake.input.images)
