"""The `bit` mode: fine-tuning by BiT-HyperRule (Kolesnikov et al. 2020; transferbench.train.hyperrule) instead of
the paper's grid search.

One run per model x dataset x seed, each trained on train + val and scored on test like the grid's final fit, and no
selection: the rule fixes every hyperparameter from the training set's size and its images' side. BiT reports the
median of 3 runs; the mode's result (transferbench.train.selection.median_run) is the run whose test value is the
median (with an even number of seeds, the lower of the two middle runs), and it records every run's value.

The rule as run:
- SGD with momentum 0.9 (not Nesterov), the rule's learning rate (0.003 at batch 512; config `bit.base_lr`, not
  rescaled with the batch) and no weight decay; warm-up and step decays from the rule's version (config
  `bit.version`, default "code": the released code's rule, which produced BiT's published numbers).
- MixUp (alpha 0.1) from 20,000 training examples (train + val), none below.
- The classifier head is a fresh linear layer initialized to zero (BiT's), the backbone the model's pretrained
  weights; no dropout (BiT's: every Dropout module and timm's `drop_rate` set to 0, for models built with one); a
  BatchNorm model keeps the study's BN momentum rule (BiT's own models have none: GroupNorm + WS).
- Batch 512 at 480 px does not fit one GPU for the larger models: `bit.batch_split` splits each batch into that many
  chunks whose gradients add up to the whole batch's (BiT's code: `batch_split`); BatchNorm models then normalize
  per chunk.
- Images: each dataset's images are cached at the rule's pre-crop size (shorter side resized, centre-cropped square:
  the study's cache; BiT's code squashes the whole image to a square instead), training takes a random crop of the
  crop size and a flip, evaluation resizes the whole pre-crop image to the crop size (data.images.Preprocessing's
  "bit" crops). Small images (area below 96 x 96) are upscaled to (160, 128), larger ones to (512, 480) (version
  code) or (448, 384) (version paper; 512/480 for `bit.largest_models`).
- `bit.schedule_scale` and `bit.image_scale` shrink the rule's step counts and image sizes for demos on CPUs; at 1
  (the default) the rule is BiT's.

The image side the rule uses is known before any job runs (the cache's size depends on it): a dataset entry's
`image_side`, else the generator's size, 8 for scikit-learn's digits, the paper datasets' known small side (CIFAR:
32) or "larger than 96 px" for the rest of them.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn

from transferbench.atomic import write_json
from transferbench.data.image_cache import load_images
from transferbench.data.images import Preprocessing
from transferbench.data.paper import PAPER_DATASETS
from transferbench.data.splits import DatasetSpec, Split
from transferbench.inference import pick_device
from transferbench.models.spec import ModelSpec, build_model, classifier_prefixes
from transferbench.predictions import save_predictions
from transferbench.train.hyperrule import HyperRule, hyperrule
from transferbench.train.loop import train_classifier

log = logging.getLogger(__name__)

LARGER_IMAGES = 96  # px: a side standing for "area at least 96 x 96", the rule's larger-image branch


def dataset_image_side(name: str, entry: dict) -> int:
    """The side (px) of a dataset's typical image, for the rule's resolution (module docstring). Raises ValueError
    naming the config key where it cannot be known."""
    if "image_side" in entry:
        return entry["image_side"]
    source = entry["source"]
    if source == "generated":
        return entry["generator"]["size"]
    if source == "sklearn_digits":
        return 8
    if source in PAPER_DATASETS:
        return PAPER_DATASETS[source].image_side or LARGER_IMAGES
    raise ValueError(f"config key 'datasets.{name}.image_side': the bit mode needs the typical side (px) of the "
                     f"{source} dataset's images (BiT-HyperRule trains images smaller than 96 x 96 at 128 px, larger "
                     "ones at 480 px, or 384 in the paper's version)")


def plan_rule(n_examples: int, image_side: int, bit: dict, largest_model: bool = False) -> HyperRule:
    """The rule for a training set of `n_examples` images of side `image_side`, scaled by the config's
    `schedule_scale` and `image_scale` (1: BiT's rule unchanged)."""
    rule = hyperrule(n_examples, (image_side, image_side), bit["version"], largest_model, bit["base_lr"],
                     bit["batch_size"])
    steps_scale, image_scale = bit["schedule_scale"], bit["image_scale"]
    if steps_scale != 1:
        steps = max(1, round(rule.steps * steps_scale))
        rule = dataclasses.replace(rule, steps=steps, warmup=min(round(rule.warmup * steps_scale), steps - 1),
                                   decays=tuple(min(max(1, round(d * steps_scale)), steps) for d in rule.decays))
    if image_scale != 1:
        rule = dataclasses.replace(rule, precrop=max(1, round(rule.precrop * image_scale)),
                                   crop=max(1, round(rule.crop * image_scale)))
    return rule


def cache_side(image_side: int, bit: dict, largest_model: bool = False) -> int:
    """The image cache's size for the bit mode: the rule's pre-crop size (it does not depend on the dataset's size)."""
    return plan_rule(1, image_side, bit, largest_model).precrop


def training_settings(rule: HyperRule, bit: dict) -> dict:
    """The rule as settings of transferbench.train.loop.train_classifier."""
    return {"steps": rule.steps, "batch_size": rule.batch_size, "momentum": rule.momentum, "nesterov": False,
            "weight_decay_divided_by_lr": False, "schedule": "steps", "decay_steps": list(rule.decays),
            "warmup_steps": rule.warmup, "mixup_alpha": rule.mixup_alpha, "flip": True, "crop_scale": [1.0, 1.0],
            "bn_momentum_rule": True, "eval_every": rule.steps, "checkpoint_every": bit["checkpoint_every"],
            "num_workers": bit["num_workers"], "batch_split": bit.get("batch_split", 1)}


def disable_dropout(model: nn.Module) -> int:
    """Set every dropout to 0 (BiT fine-tunes without): Dropout modules' p, and timm's functional `drop_rate`.
    Returns how many were on."""
    found = 0
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p:
            module.p, found = 0.0, found + 1
        if getattr(module, "drop_rate", 0):
            module.drop_rate, found = 0.0, found + 1
    return found


def zero_head(model: nn.Module) -> None:
    """Zero the classifier's weights and biases (BiT's head initialization)."""
    names = classifier_prefixes(model)
    found = False
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(names):
                parameter.zero_()
                found = True
    if not found:
        raise RuntimeError(f"no classifier parameters found under {', '.join(names)} to zero-initialize")


def run_bit(model_spec: ModelSpec, dataset_spec: DatasetSpec, split_file, bit: dict, image_side: int,
            largest_model: bool, run: int, seed: int, out_json, predictions_out, checkpoint, images_file=None,
            device: str = "auto") -> dict:
    """One seed's run (module docstring): writes its JSON (the rule included) and its test predictions."""
    spec = model_spec.with_preprocessing()
    split = Split.load(split_file)
    train_ids, train_labels = split.select("train", "val")
    eval_ids, eval_labels = split.select("test")
    rule = plan_rule(len(train_ids), image_side, bit, largest_model)
    train_images, eval_images = (load_images(dataset_spec, split, names, rule.precrop, spec.interpolation, images_file,
                                             bit["num_workers"]) for names in (("train", "val"), "test"))
    torch.manual_seed(seed)
    model = build_model(spec, len(split.classes), weights=True)
    zero_head(model)
    if disable_dropout(model):
        log.info("%s: dropout set to 0 (BiT-HyperRule fine-tunes without)", spec.name)
    preprocessing = Preprocessing(rule.crop, spec.mean, spec.std, spec.interpolation, crops="bit")
    log.info("bit %s on %s, run %d: BiT-HyperRule (%s) for %d training images of side %d px: %d steps at batch %d, "
             "warm-up %d, lr %g / 10 at %s, MixUp alpha %g, images %d px cropped to %d", spec.name, dataset_spec.name,
             run, rule.version, len(train_ids), image_side, rule.steps, rule.batch_size, rule.warmup, rule.base_lr,
             list(rule.decays), rule.mixup_alpha, rule.precrop, rule.crop)
    result = train_classifier(model, train_images, train_labels, eval_images, eval_labels, preprocessing,
                              training_settings(rule, bit), rule.base_lr, rule.weight_decay, dataset_spec.metric,
                              seed, pick_device(device), checkpoint)
    if result.outputs is None:
        raise RuntimeError(f"the bit run {run} of {spec.name} on {dataset_spec.name} diverged at the rule's lr "
                           f"{rule.base_lr}; lower bit.base_lr")
    summary = {"mode": "bit", "run": run, "seed": seed, "model": spec.name, "dataset": dataset_spec.name,
               "lr": rule.base_lr, "weight_decay": rule.weight_decay, "metric": dataset_spec.metric,
               "value": result.metric, "eval_split": "test", "n_train": len(train_ids), "n_eval": len(eval_ids),
               "rule": dataclasses.asdict(rule) | {"decays": list(rule.decays)}, "image_side": image_side}
    summary.update({k: v for k, v in result.summary().items() if k != "metric"})
    save_predictions(predictions_out, eval_labels, result.outputs)
    write_json(out_json, summary)
    return summary
