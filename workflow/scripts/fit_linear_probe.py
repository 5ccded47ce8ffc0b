from transferbench.data.splits import Split
from transferbench.data.subsets import Subset
from transferbench.probe.run import run_linear_probe
from transferbench.workflow import job_context

with job_context(snakemake):
    s = snakemake.params.settings
    split = Split.load(snakemake.input.split)
    subset = Subset.load(snakemake.input.subset, split) if snakemake.input.get("subset") else None
    run_linear_probe(snakemake.input.features, snakemake.params.weight_decays, snakemake.params.metric,
                     out_json=snakemake.output.result, predictions_out=snakemake.output.predictions,
                     num_classes=len(split.classes), max_iter=s["max_iter"], tol=s["tol"], refit_tol=s["refit_tol"],
                     device=s["device"],
                     expected={"model": snakemake.wildcards.model, "split_hash": split.hash}, subset=subset)
