from transferbench.data.splits import Split
from transferbench.probe.heads import run_head_probe
from transferbench.seeding import derive_seed
from transferbench.workflow import job_context

wc = snakemake.wildcards
with job_context(snakemake):
    split = Split.load(snakemake.input.split)
    run_head_probe(snakemake.input.features, wc.variant, snakemake.params.grid, snakemake.params.settings,
                   snakemake.params.metric, out_json=snakemake.output.result,
                   predictions_out=snakemake.output.predictions, num_classes=len(split.classes),
                   seed=derive_seed(snakemake.params.seed, "head", wc.model, wc.dataset, wc.variant),
                   expected={"model": wc.model, "split_hash": split.hash})
