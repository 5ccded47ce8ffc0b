# transferbench: do better ImageNet models transfer better? (Kornblith, Shlens & Le, CVPR 2019)
# Default: the offline demo study (config/config.yaml). The paper: --configfile config/paper.yaml.
# Stages, in data-flow order, one rules file in workflow/rules/ and one subpackage of src/transferbench/ each:
# data -> models (measured ImageNet top-1) -> features -> probe (the linear and knn modes) | train (upstream
# pretraining, finetune, scratch) -> analysis; prefetch (run where there is internet) fetches hub weights and the paper's
# datasets; footprint projects a study's disk and GPU-hours.

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The package is imported from this checkout, here and in every job (also in --software-deployment-method conda
# environments, which install only the dependencies): jobs inherit PYTHONPATH.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
# (Variables the workflow sets, not ones it needs from the user: written with update(), not asserted with envvars.)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p),
    TRANSFERBENCH_JOB="1",  # src/sitecustomize.py: Ctrl-C stops a job with one line
)

from transferbench.checks import missing_data, validate_config
from transferbench.config import ConfigError, sorted_keys

# A config file given on the command line is the whole study; the demo's is the default only when none is given.
# (Snakemake's `configfile:` directive would load the demo's and deep-merge `--configfile` over it: a paper run
# would silently hold the demo's models, datasets and training settings.)
DEMO_CONFIG = "config/config.yaml"
CONFIG_FILES = [os.path.relpath(f) for f in workflow.overwrite_configfiles] or [DEMO_CONFIG]
if not workflow.overwrite_configfiles:
    workflow.configfile(DEMO_CONFIG)

try:
    # The researcher's own architectures register with timm before the config names are checked against it.
    if workflow.is_main_process and config.get("model_modules"):
        from transferbench.models.spec import import_model_modules

        import_model_modules(config["model_modules"])
except (FileNotFoundError, ImportError) as error:
    raise WorkflowError(str(error)) from None

try:
    # Before any job runs: unknown names and malformed values stop here, naming the key and the valid choices.
    # Cluster jobs re-read the Snakefile: the main process has checked the names, so they skip timm's registry.
    validate_config(config, cross_references=workflow.is_main_process)
except ConfigError as error:
    raise WorkflowError(str(error)) from None
if workflow.is_main_process:
    # Every data path the config names is checked before any job runs. The researcher's own files (roots, split files,
    # checkpoints) here, for dry runs too; the paper's datasets, which `prefetch` fetches, in onstart below.
    own_missing, paper_missing = missing_data(config)
    if own_missing:
        raise WorkflowError("data the config names is missing:\n  " + "\n  ".join(own_missing))
    if paper_missing:  # (the dry-run flag is not known while the Snakefile is read)
        print(
            "transferbench: warning: not on disk yet (a run stops before its first job unless it only prefetches):"
            "\n  " + "\n  ".join(paper_missing),
            file=sys.stderr,
        )
if config["hub_offline"]:
    # Jobs load hub weights from the caches `prefetch` filled and never download (compute nodes are often offline);
    # huggingface_hub reads this when a job imports it. The prefetch job lifts it for itself.
    os.environ.update(HF_HUB_OFFLINE="1")
# Canonical key order: every params slice built from the config is then independent of how the YAML is ordered.
canonical_config = sorted_keys(config)
config.clear()
config.update(canonical_config)


report: "workflow/report/workflow.rst"  # `snakemake --report report.html`: every figure and table, captioned


include: "workflow/rules/common.smk"
include: "workflow/rules/prefetch.smk"
include: "workflow/rules/footprint.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/detection.smk"


if workflow.is_main_process:
    print(study_summary(CONFIG_FILES), file=sys.stderr)


onstart:
    # Before any job runs, unless the run is only `prefetch` (which fetches them) or `footprint` (which needs none).
    if paper_missing and {job.rule.name for job in workflow.dag.jobs} - {"prefetch", "footprint"}:
        raise WorkflowError("datasets missing:\n  " + "\n  ".join(paper_missing))


onerror:
    from transferbench.failures import failure_summary

    print(failure_summary(log) or f"transferbench: the run failed; see {log}", file=sys.stderr)


rule all:
    default_target: True
    input:
        rules.collect_results.output,
        rules.results_latex.output,
        rules.compute_statistics.output,
        expand(PATHS.figure, name=FIGURE_KINDS, ext=["pdf", "png"]),
        rules.compute_sweep_statistics.output if SWEEP_RUNS else [],
        expand(PATHS.figure, name=SWEEP_FIGURES, ext=["pdf", "png"]),
        rules.compute_detection_statistics.output if DETECTION_RUNS else [],
        expand(PATHS.figure, name=DETECTION_FIGURES, ext=["pdf", "png"]),
