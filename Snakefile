# transferbench: do better ImageNet models transfer better? (Kornblith, Shlens & Le, CVPR 2019)
# Default: the offline demo study (config/config.yaml). The paper: --configfile config/paper.yaml.
# Stages, in data-flow order, one rules file each: data -> upstream -> features -> linear / train -> (imagenet) ->
# analysis; prefetch (run where there is internet) fetches hub weights and the paper's datasets beforehand.

import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The package is imported from this checkout, here and in every job (also in --software-deployment-method conda
# environments, which install only the dependencies): jobs inherit PYTHONPATH.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)

from transferbench.config import ConfigError, missing_data, sorted_keys, validate_config

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
        from transferbench.models import import_model_modules

        import_model_modules(config["model_modules"])
except (FileNotFoundError, ImportError) as error:
    raise WorkflowError(str(error)) from None

try:
    # Before any job runs: unknown names and malformed values stop here, naming the key and the valid choices.
    # Cluster jobs re-read the Snakefile: the main process has checked the names, so they skip timm's registry.
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml",
                    cross_references=workflow.is_main_process)
except ConfigError as error:
    raise WorkflowError(str(error)) from None
if workflow.is_main_process:
    # Every data path the config names is checked before any job runs. The researcher's own files (roots, split files,
    # checkpoints) here, for dry runs too; the paper's datasets, which `prefetch` fetches, in onstart below.
    own_missing, paper_missing = missing_data(config)
    if own_missing:
        raise WorkflowError("data the config names is missing:\n  " + "\n  ".join(own_missing))
    if paper_missing:  # (the dry-run flag is not known while the Snakefile is read)
        print("transferbench: warning: not on disk yet (a run stops before its first job unless it only prefetches):"
              "\n  " + "\n  ".join(paper_missing), file=sys.stderr)
if config["hub_offline"]:
    # Jobs load hub weights from the caches `prefetch` filled and never download (compute nodes are often offline);
    # huggingface_hub reads this when a job imports it. The prefetch job lifts it for itself.
    os.environ["HF_HUB_OFFLINE"] = "1"
# Canonical key order: every params slice built from the config is then independent of how the YAML is ordered.
canonical_config = sorted_keys(config)
config.clear()
config.update(canonical_config)


report: "workflow/report/workflow.rst"  # `snakemake --report report.html`: every figure and table, captioned


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/upstream.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/linear.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/imagenet.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/prefetch.smk"


if workflow.is_main_process:
    print(study_summary(CONFIG_FILES), file=sys.stderr)


onstart:
    # Before any job runs, unless the run is only `prefetch` (which fetches them).
    if paper_missing and {job.rule.name for job in workflow.dag.jobs} - {"prefetch"}:
        raise WorkflowError("datasets missing:\n  " + "\n  ".join(paper_missing))


onerror:
    from transferbench.failures import failure_summary

    print(failure_summary(log) or f"transferbench: the run failed; see {log}", file=sys.stderr)


rule all:
    input:
        "results/tables/results.csv",
        rules.results_latex.output,
        rules.compute_statistics.output,
        expand("results/figures/{name}.{ext}", name=FIGURE_KINDS, ext=["pdf", "png"]),
    default_target: True
