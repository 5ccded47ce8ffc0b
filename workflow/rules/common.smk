# Config lookups and input functions. A job's params carry only its own slice of the config, so adding a model
# or a dataset changes no other job's params (Snakemake's params rerun trigger stays quiet).

import json
import os
import re
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace

from transferbench.config import grid_points, linear_grid, training_settings, upstream_settings
from transferbench.data.paper import PAPER_DATASETS
from transferbench.detection.plan import capacities, detection_grid, detection_runs, detection_settings
from transferbench.sweeps import examples_per_class, head_name, sweep_grid_points, sweep_runs, sweep_settings

CONDA_ENV = "../../envs/transferbench.yaml"  # for --software-deployment-method conda (relative to rules/)
MODELS = list(config["models"])
DATASETS = list(config["datasets"])
TRAIN_MODES = [m for m in config["modes"] if m in ("finetune", "scratch")]
# The bit mode (BiT-HyperRule, transferbench.train.bit) runs for config bit.models (default: every model).
BIT_MODELS = (config["bit"].get("models") or MODELS) if "bit" in config["modes"] else []
BIT_COMPARED = bool(BIT_MODELS) and "finetune" in config["modes"]  # the rule's cost and accuracy against the grid's
UPSTREAM_MODELS = [m for m, e in config["models"].items() if e.get("pretrained") == "upstream"]
FIGURE_KINDS = ["fig2_correlation", "fig_per_dataset", "fig_modes_per_dataset", "fig_dataset_size"]
if {"finetune", "scratch"} <= set(config["modes"]):
    FIGURE_KINDS.append("fig_finetune_vs_scratch")
FEATURE_SPACE = config["feature_space"]["enabled"]
if FEATURE_SPACE:
    FIGURE_KINDS += ["fig_class_separation", "fig4_tsne"]
ABLATION = config["ablation"]["enabled"]
if ABLATION:
    FIGURE_KINDS.append("fig3_regularizers")
if BIT_COMPARED:
    FIGURE_KINDS.append("fig_bit_vs_grid")
UPSTREAM_LABEL = "Upstream top-1 (%)" if UPSTREAM_MODELS else "ImageNet top-1 (%)"
DETECTION_RUNS = detection_runs(config)  # backbone x dataset x state x capacity (transferbench.detection.plan)
DETECTION_DATASETS = sorted({r.dataset for r in DETECTION_RUNS})
DETECTION_FIGURES = ["fig_detection_top1", "fig_detection_capacity"] if DETECTION_RUNS else []
SWEEP_RUNS = sweep_runs(config)  # the dataset-size and budget studies' runs (transferbench.sweeps)
SWEEP_STUDIES = sorted({run.study for run in SWEEP_RUNS})
SWEEP_FIGURES = [
    f
    for study, f in (
        ("budgets", "fig8_convergence"),
        ("dataset_size", "fig9_dataset_size"),
        ("schedules", "fig_schedules"),
        ("reuse", "fig_reuse_capacity"),
    )
    if study in SWEEP_STUDIES
]
# Whether this run only looks (dry run, lint, listings, summaries): it must change no file. Read from the command line:
# Snakemake tells a Snakefile whether it is a dry run only after the Snakefile has been read.
ONLY_LOOKING = any(
    arg
    in (
        "--dry-run",
        "--dryrun",
        "--lint",
        "--summary",
        "--detailed-summary",
        "--list-changes",
        "--lc",
        "--list-code-changes",
        "--list-params-changes",
        "--list-input-changes",
        "--list-rules",
        "--dag",
        "--rulegraph",
        "--filegraph",
        "--d3dag",
    )
    or re.fullmatch(r"-[a-zA-Z]*[nSD][a-zA-Z]*", arg)  # -n, -np, -S, -D
    for arg in sys.argv[1:]
)

# Every path the workflow writes, once: the rules' outputs are these templates, and every consumer fills them in
# (path(), expand) instead of writing a path out again.
PATHS = SimpleNamespace(
    generated="results/datasets/{dataset}",
    split="results/splits/{dataset}.json",
    images="results/images/{dataset}/{size}px_{interpolation}.h5",
    upstream_weights="results/upstream/{model}/weights.pth",
    upstream_metrics="results/upstream/{model}/metrics.json",
    upstream_checkpoint="results/upstream/{model}/resume.ckpt",
    imagenet_top1="results/imagenet/{model}.json",
    features="results/features/{model}/{dataset}.h5",
    linear_result="results/linear/{model}/{dataset}.json",
    linear_predictions="results/linear/{model}/{dataset}.predictions.npz",
    knn_result="results/knn/{model}/{dataset}.json",
    knn_predictions="results/knn/{model}/{dataset}.predictions.npz",
    grid_point="results/{mode}/{model}/{dataset}/grid/{point}.json",
    grid_checkpoint="results/{mode}/{model}/{dataset}/grid/{point}.ckpt",
    selection="results/{mode}/{model}/{dataset}/selection.json",
    final_result="results/{mode}/{model}/{dataset}/final.json",
    final_predictions="results/{mode}/{model}/{dataset}/predictions.npz",
    final_checkpoint="results/{mode}/{model}/{dataset}/final.ckpt",
    subset="results/subsets/{dataset}/{subset}.json",
    subset_linear_result="results/dataset_size/linear/{model}/{dataset}/{subset}.json",
    subset_linear_predictions="results/dataset_size/linear/{model}/{dataset}/{subset}.predictions.npz",
    sweep_grid_point="results/{study}/{mode}/{model}/{dataset}/{variant}/grid/{point}.json",
    sweep_grid_checkpoint="results/{study}/{mode}/{model}/{dataset}/{variant}/grid/{point}.ckpt",
    sweep_selection="results/{study}/{mode}/{model}/{dataset}/{variant}/selection.json",
    sweep_final_result="results/{study}/{mode}/{model}/{dataset}/{variant}/final.json",
    sweep_final_predictions="results/{study}/{mode}/{model}/{dataset}/{variant}/predictions.npz",
    sweep_final_checkpoint="results/{study}/{mode}/{model}/{dataset}/{variant}/final.ckpt",
    bit_run="results/bit/{model}/{dataset}/run{run}.json",
    bit_run_predictions="results/bit/{model}/{dataset}/run{run}.predictions.npz",
    bit_run_checkpoint="results/bit/{model}/{dataset}/run{run}.ckpt",
    head_result="results/reuse/head/{model}/{dataset}/{variant}.json",
    head_predictions="results/reuse/head/{model}/{dataset}/{variant}.predictions.npz",
    bit_result="results/bit/{model}/{dataset}/final.json",
    bit_predictions="results/bit/{model}/{dataset}/predictions.npz",
    detection_data="results/detection/data/{detset}",
    detection_split="results/detection/splits/{detset}.json",
    detection_grid_point="results/detection/{state}/{model}/{detset}/{capacity}/grid/{point}.json",
    detection_grid_checkpoint="results/detection/{state}/{model}/{detset}/{capacity}/grid/{point}.ckpt",
    detection_selection="results/detection/{state}/{model}/{detset}/{capacity}/selection.json",
    detection_final="results/detection/{state}/{model}/{detset}/{capacity}/final.json",
    detection_predictions="results/detection/{state}/{model}/{detset}/{capacity}/detections.json",
    detection_final_checkpoint="results/detection/{state}/{model}/{detset}/{capacity}/final.ckpt",
    table="results/tables/results.csv",
    few_shot="results/tables/few_shot.csv",
    latex="results/tables/results.tex",
    stats="results/stats/{name}",
    figure="results/figures/{name}.{ext}",
    feature_space="results/tables/feature_space.csv",
)


def path(template, wc=None, **values):
    """`template` filled from a job's wildcards and/or keyword values."""
    return template.format(**(dict(wc.items()) if wc is not None else {}), **values)


def figure(name, caption):
    """A figure's PDF and PNG; the PNG goes into the Snakemake report with its caption (workflow/report/)."""
    return {
        "pdf": path(PATHS.figure, name=name, ext="pdf"),
        "png": report(path(PATHS.figure, name=name, ext="png"), caption=f"../report/{caption}", category="Figures"),
    }


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=_alternatives(MODELS),
    dataset=_alternatives(DATASETS + (["upstream"] if "upstream" in config else [])),
    mode="finetune|scratch",
    point=r"lr[^/_]+_wd[^/]+",
    size=r"\d+",
    study="dataset_size|budgets|schedules|reuse",
    subset=r"n(?:\d+|all)-d\d+",
    variant=r"n(?:\d+|all)-d\d+|steps\d+|x\d+(?:\.\d+)?-(?:batchnorm|groupnorm|groupnorm_ws)|last\d+|mlp\d+-w\d+",
    interpolation="bilinear|bicubic|nearest",
    run=r"\d+",
    detset=_alternatives(DETECTION_DATASETS),
    state="frozen|finetune|scratch",
    capacity=r"fpn\d+-conv\d+(?:-fc\d+)?(?:-rpn\d+)?",


def model_entry(model):
    """This model's config entry, with the workflow's own checkpoint for upstream-pretrained models."""
    entry = dict(config["models"][model])
    if entry.get("pretrained") == "upstream":
        entry["checkpoint"] = path(PATHS.upstream_weights, model=model)
    return entry


def model_params(wc):
    """The model's resolved spec (weights and preprocessing from timm's or torchvision's pretrained config) as the
    job's params: jobs rebuild it as is, and a change of the resolved preprocessing reruns them."""
    return model_spec(wc.model).to_params()


def model_inputs(wc):
    """Files a model's jobs need: the upstream pretraining output or the local checkpoint file, and the researcher's
    model modules (editing one reruns the model jobs)."""
    entry = config["models"][wc.model]
    inputs = {"model_modules": config["model_modules"]} if config["model_modules"] else {}
    if entry.get("pretrained") == "upstream":
        inputs["weights"] = path(PATHS.upstream_weights, wc)
    elif "checkpoint" in entry:
        inputs["weights"] = entry["checkpoint"]
    return inputs


@cache
def model_spec(model):
    """The model's spec with its preprocessing resolved (timm's or torchvision's pretrained config)."""
    from transferbench.models.spec import ModelSpec

    return ModelSpec.from_config(model, model_entry(model)).with_preprocessing()


def image_cache_key(model):
    """(storage size, interpolation) of a model's image cache: the models sharing it share the cache."""
    from transferbench.data.images import storage_size

    spec = model_spec(model)
    return storage_size(spec.resolution, spec.crop_pct), spec.interpolation


def image_cache(wc):
    """The dataset's decoded images at this model's storage size and interpolation."""
    size, interpolation = image_cache_key(wc.model)
    return path(PATHS.images, dataset=wc.dataset, size=size, interpolation=interpolation)


@cache
def bit_image_side(dataset):
    """The typical side of a dataset's images, which BiT-HyperRule's resolution depends on (transferbench.train.bit;
    checked with the config)."""
    from transferbench.train.bit import dataset_image_side

    return dataset_image_side(dataset, config["datasets"][dataset])


def bit_job_settings(model, dataset):
    """A bit job's slice of the config: the rule's settings (without the model lists, and without the seed count:
    adding seeds adds runs and reruns none), the dataset's image side and whether the model gets the largest model's
    resolution (version paper)."""
    bit = {k: v for k, v in config["bit"].items() if k not in ("models", "largest_models", "seeds")}
    return {"bit": bit, "image_side": bit_image_side(dataset), "largest": model in config["bit"]["largest_models"]}


def bit_params(wc):
    return bit_job_settings(wc.model, wc.dataset)


def bit_cache_key(model, dataset):
    """(storage size, interpolation) of a bit job's image cache: the rule's pre-crop size."""
    from transferbench.train.bit import cache_side

    s = bit_job_settings(model, dataset)
    return cache_side(s["image_side"], s["bit"], s["largest"]), model_spec(model).interpolation


def bit_image_cache(wc):
    size, interpolation = bit_cache_key(wc.model, wc.dataset)
    return path(PATHS.images, dataset=wc.dataset, size=size, interpolation=interpolation)


def bit_run_files(wc):
    runs = range(config["bit"]["seeds"])
    return {
        "results": expand(PATHS.bit_run, model=wc.model, dataset=wc.dataset, run=runs),
        "predictions": expand(PATHS.bit_run_predictions, model=wc.model, dataset=wc.dataset, run=runs),
    }


def all_image_caches():
    """{(dataset, size, interpolation)} of every cache the study reads: the models' own sizes, and the bit mode's."""
    caches = {(d, *image_cache_key(m)) for m in MODELS for d in DATASETS}
    return caches | {(d, *bit_cache_key(m, d)) for m in BIT_MODELS for d in DATASETS}


def dataset_root(name):
    """Where a dataset's files are: the workflow's own folder for generated data; the entry's root, else the
    config's data_root for the paper's datasets (each in its own folder under it)."""
    entry = config["datasets"][name]
    if entry["source"] == "generated":
        return path(PATHS.generated, dataset=name)
    if entry["source"] in PAPER_DATASETS:
        return entry.get("root", config["data_root"])
    return entry.get("root")


def dataset_params(wc):
    """The dataset's entry without its per-mode training overrides (those reach training jobs through
    run_settings) and the bit mode's image side (bit_params), so changing them leaves its split, features and
    probes untouched."""
    entry = {k: v for k, v in config["datasets"][wc.dataset].items() if k not in ("finetune", "scratch", "image_side")}
    return {**entry, "root": dataset_root(wc.dataset)}


def dataset_inputs(wc):
    """The generated data folder, for datasets the workflow writes itself; the split file of csv datasets."""
    entry = config["datasets"][wc.dataset]
    if entry["source"] == "generated":
        return {"data": dataset_root(wc.dataset)}
    if entry["source"] == "csv":
        return {"split_file": entry["split_file"]}
    return {}


def generator_params(wc):
    if wc.dataset == "upstream":
        return config["upstream"]["dataset"]
    return config["datasets"][wc.dataset]["generator"]


# Cached per mode x dataset: the paper DAG asks for them once per grid job (21,504 times).
@cache
def mode_grid(mode, dataset):
    """{point name: {'lr', 'weight_decay'}} of a mode on a dataset."""
    return grid_points(config, mode, dataset)


@cache
def _settings_without_grid(mode, dataset):
    settings = training_settings(config, mode, dataset)
    settings.pop("grid")
    return settings


def run_settings(wc):
    """The training settings of one run, without the grid: adding or removing a grid value then leaves the params
    (a rerun trigger) of the points that stay unchanged, so only new points run."""
    return _settings_without_grid(wc.mode, wc.dataset)


def grid_jobs(grid):
    """The grid's points that run as grid jobs: none for a grid of one point (nothing to choose; see
    transferbench.train.selection)."""
    return list(grid) if len(grid) > 1 else []


def sole_point(grid):
    """A grid of one point, which its selection names without grid jobs (a param: changing it reruns the
    selection); None for larger grids, whose grid jobs' files are the selection's inputs."""
    return grid if len(grid) == 1 else None


def grid_files(wc):
    points = grid_jobs(mode_grid(wc.mode, wc.dataset))
    return expand(PATHS.grid_point, mode=wc.mode, model=wc.model, dataset=wc.dataset, point=points)


def detection_dataset_params(wc):
    """The detection dataset's entry, with where its files are: the workflow's folder for generated data; the
    entry's root, else data_root, for VOC 2007."""
    entry = dict(config["detection"]["datasets"][wc.detset])
    if entry["source"] == "generated":
        entry["root"] = path(PATHS.detection_data, detset=wc.detset)
    elif entry["source"] == "voc2007":
        entry["root"] = entry.get("root", config["data_root"])
    return entry


def detection_dataset_inputs(wc):
    """The generated detection data folder, for datasets the workflow writes itself."""
    entry = config["detection"]["datasets"][wc.detset]
    return {"data": path(PATHS.detection_data, detset=wc.detset)} if entry["source"] == "generated" else {}


def detection_capacity(name):
    return capacities(config)[name]


@cache
def detection_grid_of(state, detset):
    return detection_grid(config, state, detset)


def detection_run_settings(wc):
    """A detection run's settings without the grid (as run_settings: adding a grid value reruns no other point)."""
    settings = detection_settings(config, wc.state, wc.detset)
    settings.pop("grid")
    return settings


def detection_grid_files(wc):
    points = grid_jobs(detection_grid_of(wc.state, wc.detset))
    return expand(PATHS.detection_grid_point, **dict(wc.items()), point=points)


def result_files(model, dataset, mode, study="main", variant=None):
    """(result json, per-example predictions) of one model x dataset x mode, or of a sweep's run."""
    if study != "main":
        if mode == "head":
            files = PATHS.head_result, PATHS.head_predictions
            return tuple(path(f, model=model, dataset=dataset, variant=variant) for f in files)
        if mode == "linear":
            files = PATHS.subset_linear_result, PATHS.subset_linear_predictions
            return tuple(path(f, model=model, dataset=dataset, subset=variant) for f in files)
        files = PATHS.sweep_final_result, PATHS.sweep_final_predictions
        return tuple(path(f, study=study, mode=mode, model=model, dataset=dataset, variant=variant) for f in files)
    if mode == "bit":
        return path(PATHS.bit_result, model=model, dataset=dataset), path(
            PATHS.bit_predictions, model=model, dataset=dataset
        )
    if mode in ("linear", "knn"):
        files = (
            (PATHS.linear_result, PATHS.linear_predictions)
            if mode == "linear"
            else (PATHS.knn_result, PATHS.knn_predictions)
        )
        return tuple(path(f, model=model, dataset=dataset) for f in files)
    return (
        path(PATHS.final_result, mode=mode, model=model, dataset=dataset),
        path(PATHS.final_predictions, mode=mode, model=model, dataset=dataset),
    )


def top1_source(model):
    """The file holding a model's measured top-1: its upstream pretraining (demo), the ImageNet val measurement
    (config imagenet_val), or None (the config's imagenet_top1)."""
    if config["models"][model].get("pretrained") == "upstream":
        return path(PATHS.upstream_metrics, model=model)
    if config.get("imagenet_val"):
        return path(PATHS.imagenet_top1, model=model)
    return None


def result_rows():
    """One row per model x dataset x mode of the main study, then one per sweep run: where its result is, where its
    ImageNet top-1 comes from, and (dataset-size runs) its subset file."""
    rows = []
    runs = [
        ("main", m, d, mode, None)
        for m in MODELS
        for d in DATASETS
        for mode in config["modes"]
        if mode != "bit" or m in BIT_MODELS
    ]
    runs += [(r.study, r.model, r.dataset, r.mode, r.variant) for r in SWEEP_RUNS]
    runs += [("detection", r.model, r.dataset, r.state, r.capacity) for r in DETECTION_RUNS]
    for study, model, dataset, mode, variant in runs:
        if study == "detection":
            files = PATHS.detection_final, PATHS.detection_predictions
            result, predictions = (path(f, state=mode, model=model, detset=dataset, capacity=variant) for f in files)
        else:
            result, predictions = result_files(model, dataset, mode, study, variant)
        rows.append(
            {
                "study": study,
                "variant": variant,
                "model": model,
                "dataset": dataset,
                "mode": mode,
                "result": result,
                "predictions": predictions,
                "split": path(
                    PATHS.detection_split if study == "detection" else PATHS.split,
                    **{"detset" if study == "detection" else "dataset": dataset},
                ),
                "subset": path(PATHS.subset, dataset=dataset, subset=variant) if study == "dataset_size" else None,
                "imagenet_top1": config["models"][model].get("imagenet_top1"),
                "top1_file": top1_source(model),
                "tags": config["models"][model].get("tags", {}),
            }
        )
    return rows


def head_settings():
    """The heads' training settings (steps, batch size), without the list of heads: adding a head reruns no other
    head's job."""
    heads = config["sweeps"]["reuse"]["heads"]
    return {k: v for k, v in heads.items() if k not in ("hidden_layers", "width", "grid")}


def head_grid():
    """The heads' grid points [{'lr', 'weight_decay'}], learning rate outermost."""
    grid = config["sweeps"]["reuse"]["heads"]["grid"]
    return [{"lr": lr, "weight_decay": wd} for lr in grid["lr"] for wd in grid["weight_decay"]]


def sweep_inputs(wc):
    """A sweep run's subset file (dataset-size runs)."""
    return {"subset": path(PATHS.subset, dataset=wc.dataset, subset=wc.variant)} if wc.study == "dataset_size" else {}


def sweep_run_settings(wc):
    """A sweep run's training settings without the grid (as run_settings)."""
    settings = sweep_settings(config, wc.study, wc.mode, wc.dataset, wc.variant)
    settings.pop("grid")
    return settings


@cache
def sweep_grid(study, mode, dataset):
    return sweep_grid_points(config, study, mode, dataset)


def sweep_grid_files(wc):
    points = grid_jobs(sweep_grid(wc.study, wc.mode, wc.dataset))
    return expand(PATHS.sweep_grid_point, **dict(wc.items()), point=points)


def study_jobs():
    """{rule: jobs} of the whole study, as a run from nothing executes it (the start-up line's count)."""
    models, datasets, train_modes = len(MODELS), len(DATASETS), len(TRAIN_MODES)
    generated = [d for d in DATASETS if config["datasets"][d]["source"] == "generated"]
    jobs = {
        "generate_dataset": len(generated) + bool(UPSTREAM_MODELS),
        "pretrain_upstream": len(UPSTREAM_MODELS),
        "make_split": datasets,
        "cache_images": len(all_image_caches()),
        "extract_features": len(feature_pairs()),
        "fit_linear_probe": models * datasets * ("linear" in config["modes"]),
        "fit_knn_probe": models * datasets * ("knn" in config["modes"]),
        "train_grid_point": models * sum(len(grid_jobs(mode_grid(m, d))) for m in TRAIN_MODES for d in DATASETS),
        "select_grid_point": models * datasets * train_modes,
        "train_final": models * datasets * train_modes,
        "train_bit": len(BIT_MODELS) * datasets * config["bit"]["seeds"],
        "pick_bit_median": len(BIT_MODELS) * datasets,
        "compare_bit_to_grid": int(BIT_COMPARED),
        "measure_imagenet_top1": models * bool(config.get("imagenet_val")),
        "collect_results": 1,
        "results_latex": 1,
        "compute_statistics": 1,
        "all": 1,
    }
    jobs.update({name: 1 for name in FIGURE_KINDS})
    jobs["measure_feature_space"] = int(FEATURE_SPACE)
    jobs["compute_ablation_statistics"] = int(ABLATION)
    trained = [r for r in SWEEP_RUNS if r.trained]
    jobs.update(
        {
            "draw_subset": len({(r.dataset, r.variant) for r in SWEEP_RUNS if r.study == "dataset_size"}),
            "fit_linear_probe_on_subset": sum(r.mode == "linear" for r in SWEEP_RUNS),
            "fit_head_on_features": sum(r.mode == "head" for r in SWEEP_RUNS),
            "train_grid_point_in_sweep": sum(len(grid_jobs(sweep_grid(r.study, r.mode, r.dataset))) for r in trained),
            "select_grid_point_in_sweep": len(trained),
            "train_final_in_sweep": len(trained),
            "compute_sweep_statistics": bool(SWEEP_RUNS),
        }
    )
    jobs.update({name: 1 for name in SWEEP_FIGURES})
    detection_trained = [(r.state, r.dataset) for r in DETECTION_RUNS]
    jobs.update(
        {
            "generate_detection_dataset": sum(
                config["detection"]["datasets"][d]["source"] == "generated" for d in DETECTION_DATASETS
            ),
            "make_detection_split": len(DETECTION_DATASETS),
            "train_detector_grid_point": sum(len(grid_jobs(detection_grid_of(s, d))) for s, d in detection_trained),
            "select_detector_grid_point": len(DETECTION_RUNS),
            "train_detector_final": len(DETECTION_RUNS),
            "compute_detection_statistics": int(bool(DETECTION_RUNS)),
        }
    )
    jobs.update({name: 1 for name in DETECTION_FIGURES})
    return {rule: n for rule, n in jobs.items() if n}


def feature_pairs():
    """(model, dataset) pairs whose features are extracted: the main study's probes (linear, knn), and the sweep runs
    on cached features (linear subset runs, the reuse study's heads)."""
    probed = {"linear", "knn"} & set(config["modes"])
    pairs = {(m, d) for m in MODELS for d in DATASETS} if probed else set()
    return pairs | {(r.model, r.dataset) for r in SWEEP_RUNS if not r.trained}


def study_summary(config_files):
    """The config file(s) in force, the study's size and each training mode's protocol (grid, steps, batch)."""
    from transferbench.train.loop import total_steps

    modes = config["modes"]
    lines = [
        f"transferbench: study {' + '.join(config_files)}: {len(MODELS)} models x {len(DATASETS)} datasets x "
        f"{len(modes)} modes ({', '.join(modes)}) = {sum(r['study'] == 'main' for r in result_rows()):,} results, "
        f"{sum(study_jobs().values()):,} jobs in all"
    ]
    for mode in TRAIN_MODES:  # the protocol in force, per distinct setting over the datasets
        protocols = sorted(
            {
                (len(mode_grid(mode, d)), total_steps(s), s["batch_size"])
                for d in DATASETS
                for s in [_settings_without_grid(mode, d)]
            }
        )
        lines.append(
            f"  {mode}: "
            + " | ".join(f"{g} grid points x {steps:,} steps at batch {batch}" for g, steps, batch in protocols)
        )
    if BIT_MODELS:
        bit = config["bit"]
        lines.append(
            f"  bit: BiT-HyperRule ({bit['version']} version), {bit['seeds']} runs per model x dataset (median "
            f"reported), {len(BIT_MODELS)} models, batch {bit['batch_size']}"
            + (
                ""
                if bit["schedule_scale"] == bit["image_scale"] == 1
                else f"; scaled for a demo: steps x {bit['schedule_scale']:g}, images x {bit['image_scale']:g}"
            )
        )
    for study in SWEEP_STUDIES:
        runs = [r for r in SWEEP_RUNS if r.study == study]
        sweep = config["sweeps"][study]
        if study == "dataset_size":
            sizes = "; ".join(
                f"{d}: {', '.join('all' if k is None else str(k) for k in examples_per_class(v))}"
                for d, v in sweep["examples_per_class"].items()
            )
            what = f"examples per class {sizes}, {sweep['draws']} draws"
        elif study == "budgets":
            what = "; ".join(
                f"{mode}: {', '.join(f'{s:,}' for s in steps)} steps" for mode, steps in sweep["steps"].items()
            )
        elif study == "reuse":
            heads = sweep["heads"]
            what = (
                f"heads {', '.join(['linear'] + [head_name(k, heads['width']) for k in heads['hidden_layers']])}; "
                f"fine-tuning the last {', '.join(map(str, sweep['trainable_stages']))} stages or all"
            )
        else:
            what = "; ".join(f"{mode}: {', '.join(f'{m:g}x' for m in ms)}" for mode, ms in sweep["multiples"].items())
            what += f"; scratch norms {', '.join(sweep['norms'])}"
        lines.append(
            f"  sweep {study}: {len(runs):,} runs ({len({r.model for r in runs})} models, "
            f"modes {', '.join(sorted({r.mode for r in runs}))}; {what})"
        )
    if DETECTION_RUNS:
        section = config["detection"]
        lines.append(
            f"  detection: {len(DETECTION_RUNS):,} runs ({len({r.model for r in DETECTION_RUNS})} backbones x "
            f"{', '.join(DETECTION_DATASETS)} x states {', '.join(section['states'])} x capacities "
            f"{', '.join(capacities(config))}); Faster R-CNN + FPN"
        )
    lines.append("  its disk and GPU-hours, projected: snakemake footprint (results/footprint.txt)")
    return "\n".join(lines)


def split_sizes(name):
    """{split: images} from a dataset's split file once made, else None."""
    split = Path(path(PATHS.split, dataset=name))
    return json.loads(split.read_text())["sizes"] if split.is_file() else None


def dataset_images(name):
    """A dataset's images (train + val + test): the paper's published count, or its split file's once made; None
    before that (transferbench.footprint)."""
    source = config["datasets"][name]["source"]
    if source in PAPER_DATASETS:
        return PAPER_DATASETS[source].train + PAPER_DATASETS[source].test
    sizes = split_sizes(name)
    return sum(sizes.values()) if sizes else None


def footprint_plan():
    """What the footprint job projects: the study's caches, feature files and training jobs (as study_jobs counts
    them), the datasets' sizes and the config's rates."""
    from transferbench.train.bit import plan_rule
    from transferbench.train.loop import total_steps

    def training(model, dataset, mode, settings, grid):
        return dict(
            model=model,
            dataset=dataset,
            mode=mode,
            jobs=len(grid_jobs(grid)) + 1,
            steps=total_steps(settings),
            batch_size=settings["batch_size"],
        )

    groups = [
        training(m, d, mode, training_settings(config, mode, d), mode_grid(mode, d))
        for m in MODELS
        for d in DATASETS
        for mode in TRAIN_MODES
    ]
    groups += [
        training(
            r.model,
            r.dataset,
            f"{r.mode} ({r.study} {r.variant})",
            sweep_settings(config, r.study, r.mode, r.dataset, r.variant),
            sweep_grid(r.study, r.mode, r.dataset),
        )
        for r in SWEEP_RUNS
        if r.trained
    ]
    groups += [
        dict(
            model=m,
            dataset="upstream",
            mode="upstream pretraining",
            jobs=1,
            steps=total_steps(upstream),
            batch_size=upstream["batch_size"],
        )
        for m in UPSTREAM_MODELS
        for upstream in [upstream_settings(config, m)]  # the model's own settings over the shared ones
    ]
    for m in BIT_MODELS:
        for d in DATASETS:
            s = bit_job_settings(m, d)
            plan = plan_rule(bit_examples(d) or 1, s["image_side"], s["bit"], s["largest"])
            groups.append(
                dict(
                    model=m,
                    dataset=d,
                    mode="bit",
                    jobs=config["bit"]["seeds"],
                    steps=plan.steps,
                    batch_size=plan.batch_size,
                )
            )
    caches = all_image_caches()
    return {
        "models": {m: config["models"][m] for m in MODELS},
        "dataset_images": {d: dataset_images(d) for d in DATASETS},
        "caches": sorted(caches),
        "feature_pairs": sorted(feature_pairs()),
        "bytes_per_feature": 2 if config["features"]["dtype"] == "float16" else 4,
        "training": groups,
        "rates": config["footprint"],
        "imagenet_val_models": len(MODELS) if config.get("imagenet_val") else 0,
        "image_sides": {d: side for d in DATASETS if (side := paper_image_side(d))},
    }


def bit_examples(name):
    """A dataset's training examples for the bit mode (train + val): its split file's once made, else the paper's
    published training-set size; None before that (the footprint then plans the rule's shortest schedule)."""
    sizes = split_sizes(name)
    if sizes:
        return sizes["train"] + sizes["val"]
    source = config["datasets"][name]["source"]
    return PAPER_DATASETS[source].train if source in PAPER_DATASETS else None


def paper_image_side(name):
    source = config["datasets"][name]["source"]
    return PAPER_DATASETS[source].image_side if source in PAPER_DATASETS else None


def main_feature_files():
    """{(model, dataset): features file} of the main study's probes (the feature-space measure's inputs)."""
    if not {"linear", "knn"} & set(config["modes"]):
        return {}
    return {(m, d): path(PATHS.features, model=m, dataset=d) for m in MODELS for d in DATASETS}


def tsne_choice():
    """(dataset, models) of the t-SNE figure: the config's, else the first single-label dataset and the first and
    last models of the study."""
    tsne = config["feature_space"]["tsne"]
    single = [d for d in DATASETS if config["datasets"][d]["metric"] != "map_11point"]
    dataset = tsne.get("dataset") or (single[0] if single else DATASETS[0])
    models = tsne.get("models") or list(dict.fromkeys([MODELS[0], MODELS[-1]]))
    return dataset, models


def bit_grid_pairs():
    """Per bit model x dataset: the finetune grid's point files and final fit, and the bit result (the cost-accuracy
    comparison's inputs, transferbench.analysis.protocols)."""
    return [
        {
            "model": m,
            "dataset": d,
            "grid": expand(
                PATHS.grid_point, mode="finetune", model=m, dataset=d, point=grid_jobs(mode_grid("finetune", d))
            ),
            "final": path(PATHS.final_result, mode="finetune", model=m, dataset=d),
            "bit": path(PATHS.bit_result, model=m, dataset=d),
        }
        for m in BIT_MODELS
        for d in DATASETS
    ]
