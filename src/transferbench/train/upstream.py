"""The demo's stand-in for ImageNet pretraining: train each model of the family from scratch on the generated
upstream task, and record its top-1 on the upstream test split (the part ImageNet top-1 plays in the paper)."""

from __future__ import annotations

import logging

import torch

from transferbench.atomic import atomic_path, write_json
from transferbench.data.images import Preprocessing, decode_images, storage_size
from transferbench.data.splits import DatasetSpec, make_split
from transferbench.inference import pick_device
from transferbench.models.spec import ModelSpec, build_model
from transferbench.train.loop import train_classifier

log = logging.getLogger(__name__)


def pretrain_upstream(model_spec: ModelSpec, data_dir, settings: dict, seed: int, checkpoint_out, metrics_out,
                      resume_checkpoint, device: str = "auto") -> dict:
    """Train on all of the upstream train split, score top-1 on its test split, save the weights."""
    spec = model_spec.with_preprocessing()
    dataset = DatasetSpec(name="upstream", source="generated", metric="top1", root=str(data_dir))
    split = make_split(dataset, seed)
    size = storage_size(spec.resolution, spec.crop_pct)
    train_ids, train_labels = split.select("train", "val")
    test_ids, test_labels = split.select("test")
    train_images = decode_images(dataset, train_ids, size, spec.interpolation)
    test_images = decode_images(dataset, test_ids, size, spec.interpolation)
    torch.manual_seed(seed)
    model = build_model(spec, len(split.classes), weights=False)
    grid = settings["grid"]
    lr, weight_decay = grid["lr"][0], grid["weight_decay"][0]
    result = train_classifier(model, train_images, train_labels, test_images, test_labels,
                              Preprocessing(spec.resolution, spec.mean, spec.std, spec.interpolation), settings,
                              lr, weight_decay, "top1", seed, pick_device(device), resume_checkpoint)
    if result.diverged:
        raise RuntimeError(f"upstream pretraining of '{spec.name}' diverged at lr {lr}; lower upstream.train.grid.lr")
    with atomic_path(checkpoint_out) as tmp:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
    summary = {"model": spec.name, "top1": 100 * result.metric, "classes": len(split.classes),
               "n_train": len(train_ids), "n_test": len(test_ids), "lr": lr, "weight_decay": weight_decay,
               "label_smoothing": settings.get("label_smoothing", 0.0), "aux_weight": settings.get("aux_weight", 0.0),
               **{k: v for k, v in result.summary().items() if k != "metric"}}
    write_json(metrics_out, summary)
    log.info("upstream top-1 of %s: %.2f%%", spec.name, summary["top1"])
    return summary
