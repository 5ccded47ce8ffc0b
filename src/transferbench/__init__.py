"""transferbench: do better ImageNet models transfer better? (Kornblith, Shlens & Le, CVPR 2019).

The package holds the logic of every workflow stage; it knows nothing of Snakemake. One subpackage per stage, in
data-flow order, each matching a rules file in workflow/rules/:
data (generated data, splits, decoded images) -> models (specs, building, measured ImageNet top-1) -> features
(extraction into HDF5) -> probe (the linear mode) | train (upstream pretraining, finetune, scratch, selection)
-> analysis (results table, statistics, figures). Shared leaf modules: config (schema and per-job slices), hints,
atomic, seeding, metrics, predictions, inference; checks (a study before any job runs), prefetch (offline nodes),
workflow and failures (job glue) sit above the stages.
"""

__version__ = "0.1.0"
