"""The `finetune` and `scratch` mode jobs: one grid point on train -> val, or the final fit on train+val -> test.

`finetune` starts from the model's pretrained weights; `scratch` builds the same architecture randomly initialized
(optionally with another normalization layer, for any CNN timm or torchvision builds: GroupNorm or GN + weight
standardization by module conversion, as in Rethinking ImageNet Pre-training and BiT). Both replace the classifier
with a fresh head for the dataset's classes.

A run on a training-set subset (the dataset-size sweep, transferbench.data.subsets) trains on its subset alone in
both phases: the grid point is scored on val, the final fit (the chosen point, on the subset again) on test. Val is
not added to the final fit's training set as it is in the full study: with 1 example per class it would swamp the
subset.

Partial fine-tuning (the reuse study, settings `trainable_stages` k): the model's weights as `finetune`, then every
stage but the last k frozen, their BatchNorm statistics included (transferbench.models.stages); the head always
trains. Every run records its `trainable_params`.
"""

from __future__ import annotations

import logging

import torch

from transferbench.atomic import write_json
from transferbench.data.image_cache import load_images
from transferbench.data.images import Preprocessing, storage_size
from transferbench.data.splits import DatasetSpec, Split
from transferbench.data.subsets import Subset
from transferbench.inference import pick_device
from transferbench.models.normalization import convert_norm
from transferbench.models.spec import ModelSpec, build_model
from transferbench.models.stages import freeze_all_but_last, trainable_parameters
from transferbench.predictions import save_predictions
from transferbench.train.loop import train_classifier

log = logging.getLogger(__name__)

PHASES = {"grid": (("train",), "val"), "final": (("train", "val"), "test")}


def build_for_mode(spec: ModelSpec, mode: str, num_classes: int, settings: dict, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # head (and, for scratch, every weight) initialized from the job's seed
    if mode == "finetune":
        model = build_model(spec, num_classes, weights=True)
        if settings.get("trainable_stages") is not None:
            frozen = freeze_all_but_last(model, settings["trainable_stages"], spec.resolution)
            log.info("%s: the last %d of %d stages and the head train (%s of %s parameters)", spec.name,
                     frozen["trainable_stages"], frozen["stages"], f"{frozen['trainable_params']:,}",
                     f"{frozen['total_params']:,}")
        return model
    if mode == "scratch":
        # Any CNN timm or torchvision builds: its BatchNorms become GroupNorm (and its convolutions weight-
        # standardized) by module conversion, the architecture otherwise unchanged (transferbench.models.normalization).
        model = build_model(spec, num_classes, weights=False)
        conversion = convert_norm(model, settings.get("norm", "batchnorm"))
        if conversion.norm != "batchnorm":
            log.info("%s: %s", spec.name, conversion.describe())
        return model
    raise ValueError(f"unknown training mode {mode!r}: expected finetune or scratch")


def run_training(mode: str, model_spec: ModelSpec, dataset_spec: DatasetSpec, split_file, settings: dict,
                 lr: float, weight_decay: float, phase: str, seed: int, out_json, checkpoint,
                 predictions_out=None, point: str | None = None, device: str = "auto", images_file=None,
                 subset_file=None) -> dict:
    """Train one configuration and write its JSON (and, for the final phase, its test predictions). With
    `subset_file`, on that training-set subset (module docstring)."""
    train_names, eval_name = PHASES[phase]
    spec = model_spec.with_preprocessing()
    split = Split.load(split_file)
    subset = None if subset_file is None else Subset.load(subset_file, split)
    if subset is not None:
        train_names = ("train",)
    size = storage_size(spec.resolution, spec.crop_pct)
    workers = settings.get("num_workers", 0)
    train_ids, train_labels = split.select(*train_names)
    if subset is not None:
        train_ids, train_labels = subset.select(train_ids, train_labels)
    eval_ids, eval_labels = split.select(eval_name)
    train_images = load_images(dataset_spec, split, train_names, size, spec.interpolation, images_file, workers, subset)
    eval_images = load_images(dataset_spec, split, eval_name, size, spec.interpolation, images_file, workers)
    model = build_for_mode(spec, mode, len(split.classes), settings, seed)
    preprocessing = Preprocessing(spec.resolution, spec.mean, spec.std, spec.interpolation)
    log.info("%s %s on %s (%s): lr %g, weight decay %g, %d train / %d %s images", mode, spec.name, dataset_spec.name,
             phase, lr, weight_decay, len(train_ids), len(eval_ids), eval_name)
    result = train_classifier(model, train_images, train_labels, eval_images, eval_labels, preprocessing, settings,
                              lr, weight_decay, dataset_spec.metric, seed, pick_device(device), checkpoint)
    summary = {"mode": mode, "phase": phase, "point": point, "model": spec.name, "dataset": dataset_spec.name,
               "lr": lr, "weight_decay": weight_decay, "metric": dataset_spec.metric, "value": result.metric,
               "eval_split": eval_name, "n_train": len(train_ids), "n_eval": len(eval_ids),
               "subset": None if subset is None else subset.name, "trainable_params": trainable_parameters(model),
               "trainable_stages": settings.get("trainable_stages"), "head": "linear"}
    summary.update({k: v for k, v in result.summary().items() if k != "metric"})
    if predictions_out is not None:
        if result.outputs is None:
            raise RuntimeError(f"the final {mode} fit of {spec.name} on {dataset_spec.name} diverged at lr {lr}; "
                               "no test predictions (the chosen grid point, or a grid's only point, diverged on "
                               "train+val: lower its learning rate)")
        save_predictions(predictions_out, eval_labels, result.outputs)
    write_json(out_json, summary)
    return summary
