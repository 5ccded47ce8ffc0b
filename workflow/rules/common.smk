# Config lookups and input functions. A job's params carry only its own slice of the config, so adding a model
# or a dataset changes no other job's params (Snakemake's params rerun trigger stays quiet).

import re
from functools import cache
from types import SimpleNamespace

from transferbench.config import grid_points, linear_grid, training_settings, upstream_settings
from transferbench.paper_datasets import PAPER_DATASETS

CONDA_ENV = "../../envs/transferbench.yaml"  # for --software-deployment-method conda (relative to rules/)
MODELS = list(config["models"])
DATASETS = list(config["datasets"])
TRAIN_MODES = [m for m in config["modes"] if m in ("finetune", "scratch")]
UPSTREAM_MODELS = [m for m, e in config["models"].items() if e.get("pretrained") == "upstream"]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    model=_alternatives(MODELS),
    dataset=_alternatives(DATASETS + (["upstream"] if "upstream" in config else [])),
    mode="finetune|scratch",
    point=r"lr[^/_]+_wd[^/]+",
    size=r"\d+",
    interpolation="bilinear|bicubic|nearest",


def upstream_weights(model):
    return f"results/upstream/{model}/weights.pth"


def model_params(wc):
    """This model's config entry, with the workflow's own checkpoint for upstream-pretrained models."""
    entry = dict(config["models"][wc.model])
    if entry.get("pretrained") == "upstream":
        entry["checkpoint"] = upstream_weights(wc.model)
    return entry


def model_inputs(wc):
    """Files a model's jobs need: the upstream pretraining output or the local checkpoint file, and the researcher's
    model modules (editing one reruns the model jobs)."""
    entry = config["models"][wc.model]
    inputs = {"model_modules": config["model_modules"]} if config["model_modules"] else {}
    if entry.get("pretrained") == "upstream":
        inputs["weights"] = upstream_weights(wc.model)
    elif "checkpoint" in entry:
        inputs["weights"] = entry["checkpoint"]
    return inputs


@cache
def model_spec(model):
    """The model's spec with its preprocessing resolved (timm's or torchvision's pretrained config)."""
    from transferbench.models import ModelSpec

    return ModelSpec.from_config(model, model_params(SimpleNamespace(model=model))).with_preprocessing()


def image_cache(wc):
    """The dataset's decoded images at this model's storage size and interpolation."""
    from transferbench.images import storage_size

    spec = model_spec(wc.model)
    return f"results/images/{wc.dataset}/{storage_size(spec.resolution, spec.crop_pct)}px_{spec.interpolation}.h5"


def dataset_root(name):
    """Where a dataset's files are: the workflow's own folder for generated data; the entry's root, else the
    config's data_root for the paper's datasets (each in its own folder under it)."""
    entry = config["datasets"][name]
    if entry["source"] == "generated":
        return f"results/datasets/{name}"
    if entry["source"] in PAPER_DATASETS:
        return entry.get("root", config["data_root"])
    return entry.get("root")


def dataset_params(wc):
    """The dataset's entry without its per-mode training overrides (those reach training jobs through
    run_settings), so changing a dataset's grid leaves its split, features and probes untouched."""
    entry = {k: v for k, v in config["datasets"][wc.dataset].items() if k not in ("finetune", "scratch")}
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


def grid_files(wc):
    return expand("results/{mode}/{model}/{dataset}/grid/{point}.json", mode=wc.mode, model=wc.model,
                  dataset=wc.dataset, point=mode_grid(wc.mode, wc.dataset))


def result_file(model, dataset, mode):
    if mode == "linear":
        return f"results/linear/{model}/{dataset}.json"
    return f"results/{mode}/{model}/{dataset}/final.json"


def predictions_file(model, dataset, mode):
    if mode == "linear":
        return f"results/linear/{model}/{dataset}.predictions.npz"
    return f"results/{mode}/{model}/{dataset}/predictions.npz"


def top1_source(model):
    """The file holding a model's measured top-1: its upstream pretraining (demo), the ImageNet val measurement
    (config imagenet_val), or None (the config's imagenet_top1)."""
    if config["models"][model].get("pretrained") == "upstream":
        return upstream_weights(model).replace("weights.pth", "metrics.json")
    if config.get("imagenet_val"):
        return f"results/imagenet/{model}.json"
    return None


def result_rows():
    """One row per model x dataset x mode: where its result is and where its ImageNet top-1 comes from."""
    rows = []
    for model in MODELS:
        entry = config["models"][model]
        top1 = entry.get("imagenet_top1")
        top1_file = top1_source(model)
        for dataset in DATASETS:
            for mode in config["modes"]:
                rows.append({"model": model, "dataset": dataset, "mode": mode, "result": result_file(model, dataset, mode),
                             "predictions": predictions_file(model, dataset, mode),
                             "split": f"results/splits/{dataset}.json", "imagenet_top1": top1, "top1_file": top1_file})
    return rows


def study_jobs():
    """{rule: jobs} of the whole study, as a run from nothing executes it (the start-up line's count)."""
    models, datasets, train_modes = len(MODELS), len(DATASETS), len(TRAIN_MODES)
    generated = [d for d in DATASETS if config["datasets"][d]["source"] == "generated"]
    jobs = {
        "generate_dataset": len(generated) + bool(UPSTREAM_MODELS),
        "pretrain_upstream": len(UPSTREAM_MODELS),
        "make_split": datasets,
        "cache_images": len({image_cache(SimpleNamespace(model=m, dataset=d)) for m in MODELS for d in DATASETS}),
        "extract_features": models * datasets * ("linear" in config["modes"]),
        "fit_linear_probe": models * datasets * ("linear" in config["modes"]),
        "train_grid_point": models * sum(len(mode_grid(m, d)) for m in TRAIN_MODES for d in DATASETS),
        "select_grid_point": models * datasets * train_modes,
        "train_final": models * datasets * train_modes,
        "measure_imagenet_top1": models * bool(config.get("imagenet_val")),
        "collect_results": 1,
        "results_latex": 1,
        "compute_statistics": 1,
        "all": 1,
    }
    jobs.update({name: 1 for name in FIGURE_KINDS})
    return {rule: n for rule, n in jobs.items() if n}


def study_summary(config_files):
    """The config file(s) in force, the study's size and each training mode's protocol (grid, steps, batch)."""
    from transferbench.training import total_steps

    modes = config["modes"]
    lines = [f"transferbench: study {' + '.join(config_files)}: {len(MODELS)} models x {len(DATASETS)} datasets x "
             f"{len(modes)} modes ({', '.join(modes)}) = {len(MODELS) * len(DATASETS) * len(modes):,} results, "
             f"{sum(study_jobs().values()):,} jobs in all"]
    for mode in TRAIN_MODES:  # the protocol in force, per distinct setting over the datasets
        protocols = sorted({(len(mode_grid(mode, d)), total_steps(s), s["batch_size"])
                            for d in DATASETS for s in [_settings_without_grid(mode, d)]})
        lines.append(f"  {mode}: " + " | ".join(f"{g} grid points x {steps:,} steps at batch {batch}"
                                               for g, steps, batch in protocols))
    return "\n".join(lines)
