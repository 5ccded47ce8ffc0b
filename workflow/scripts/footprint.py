from pathlib import Path

from transferbench.atomic import atomic_path
from transferbench.footprint import TrainingJobs, project, summary
from transferbench.models.spec import ModelSpec, feature_width
from transferbench.workflow import job_context

with job_context(snakemake):
    plan = snakemake.params.plan
    pairs = [tuple(p) for p in plan["feature_pairs"]]
    widths = {m: feature_width(ModelSpec.from_config(m, plan["models"][m])) for m in sorted({m for m, _ in pairs})}
    table = project(plan["dataset_images"], [tuple(c) for c in plan["caches"]], pairs, widths,
                    plan["bytes_per_feature"], [TrainingJobs(**g) for g in plan["training"]], plan["rates"],
                    plan["imagenet_val_models"], plan["image_sides"])
    text = summary(table, [d for d, n in plan["dataset_images"].items() if n is None])
    with atomic_path(snakemake.output.table) as tmp:  # as every other output: complete or absent
        table.to_csv(tmp, index=False)
    with atomic_path(snakemake.output.summary) as tmp:
        Path(tmp).write_text(text + "\n")
    print(text, flush=True)
