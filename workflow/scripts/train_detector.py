from transferbench.atomic import read_json
from transferbench.detection.data import DetectionDatasetSpec
from transferbench.detection.train import run_detection
from transferbench.models.spec import ModelSpec
from transferbench.seeding import derive_seed
from transferbench.workflow import job_context

# One rule script for both phases: a grid point (output: the point's JSON) and the final fit (outputs result and
# predictions, input selection).
wc = snakemake.wildcards
final = "selection" in snakemake.input.keys()
with job_context(snakemake):
    point = read_json(snakemake.input.selection) if final else snakemake.params.hparams
    name = point["chosen"] if final else wc.point
    run_detection(wc.state, ModelSpec.from_config(wc.model, snakemake.params.model),
                  DetectionDatasetSpec.from_config(wc.detset, snakemake.params.dataset), snakemake.input.split,
                  snakemake.params.capacity, snakemake.params.settings, lr=point["lr"],
                  weight_decay=point["weight_decay"], phase="final" if final else "grid", point=name,
                  seed=derive_seed(snakemake.params.seed, "detection", wc.state, wc.model, wc.detset, wc.capacity,
                                   "final" if final else wc.point),
                  out_json=snakemake.output.result if final else snakemake.output[0],
                  checkpoint=snakemake.params.checkpoint,
                  predictions_out=snakemake.output.predictions if final else None,
                  device=snakemake.params.settings["device"])
