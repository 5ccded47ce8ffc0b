from transferbench.data.splits import Split
from transferbench.probe.run import run_knn_probe
from transferbench.workflow import job_context

with job_context(snakemake):
    split = Split.load(snakemake.input.split)
    run_knn_probe(snakemake.input.features, snakemake.params.metric, out_json=snakemake.output.result,
                  predictions_out=snakemake.output.predictions, num_classes=len(split.classes),
                  settings=snakemake.params.settings,
                  expected={"model": snakemake.wildcards.model, "split_hash": split.hash})
