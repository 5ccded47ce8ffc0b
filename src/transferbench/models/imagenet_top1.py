"""ImageNet top-1 measured by the workflow (config `imagenet_val`), replacing the config's value.

The validation images are in the usual class-folder layout, `<imagenet_val>/<wnid>/<image>` (what the common
`valprep.sh` leaves): 1,000 folders whose sorted order is the class index order of timm's and torchvision's
ImageNet heads. Each image goes through the model's own evaluation preprocessing (resize + centre crop at its
resolution, its mean/std), the same as feature extraction. A head with a background class (`label_offset` in timm's
pretrained config, or the model entry's `label_offset`; 1,001 outputs) has its leading outputs dropped.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from transferbench.atomic import write_json
from transferbench.data.images import DecodedImages, Preprocessing, storage_size
from transferbench.data.splits import IMAGE_SUFFIXES, DatasetSpec
from transferbench.inference import autocast, pick_device, prepare_model, to_device
from transferbench.models.spec import ModelSpec, build_imagenet_classifier

log = logging.getLogger(__name__)


def imagenet_val_samples(root) -> tuple[list[str], np.ndarray, list[str]]:
    """(ids 'wnid/file' relative to root, labels, sorted wnids) of an ImageNet val folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"config key 'imagenet_val': {root} is not a folder; expected <wnid>/<image>.JPEG")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"config key 'imagenet_val': {root} has no class folders; expected <wnid>/<image>.JPEG"
                                " (the flat val/ folder needs sorting into class folders first, e.g. valprep.sh)")
    ids, labels = [], []
    for index, wnid in enumerate(classes):
        files = sorted(f.name for f in (root / wnid).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        ids += [f"{wnid}/{f}" for f in files]
        labels += [index] * len(files)
    return ids, np.array(labels), classes


@torch.inference_mode()
def measure_imagenet_top1(model_spec: ModelSpec, val_root, out_json, batch_size: int = 256, num_workers: int = 0,
                          device: str = "auto") -> dict:
    """Top-1 (percent) of the model's own classifier on the ImageNet val folder; written to `out_json`."""
    spec = model_spec.with_preprocessing()
    ids, labels, classes = imagenet_val_samples(val_root)
    dev = pick_device(device)
    model = prepare_model(build_imagenet_classifier(spec), dev).eval()
    offset = spec.label_offset
    if offset is None:
        offset = int(getattr(model, "pretrained_cfg", {}).get("label_offset") or 0)
    images = DecodedImages(DatasetSpec("imagenet_val", "imagefolder", "top1", root=str(val_root)), ids,
                           storage_size(spec.resolution, spec.crop_pct), spec.interpolation)
    preprocessing = Preprocessing(spec.resolution, spec.mean, spec.std, spec.interpolation)
    correct, done, started = 0, 0, time.perf_counter()
    for batch in DataLoader(images, batch_size=batch_size, num_workers=num_workers, pin_memory=dev.type == "cuda"):
        with autocast(dev):
            logits = model(to_device(preprocessing.evaluation(batch), dev)).float().cpu()
        if logits.shape[1] - offset != len(classes):
            hint = (f"; if its first {logits.shape[1] - len(classes)} output(s) are background classes (TF-slim "
                    f"checkpoints), set models.{spec.name}.label_offset: {logits.shape[1] - len(classes)}"
                    if logits.shape[1] > len(classes) and not offset else "")
            raise ValueError(f"model '{spec.name}' has {logits.shape[1] - offset} ImageNet classes (label_offset "
                             f"{offset}), {val_root} has {len(classes)} class folders; they must match (sorted wnids = "
                             f"class indices){hint}")
        predicted = logits[:, offset:].argmax(1).numpy()  # a background output can never be the prediction
        correct += int((predicted == labels[done:done + len(batch)]).sum())
        done += len(batch)
        rate = done / (time.perf_counter() - started)
        log.info("%s: %d/%d images, top-1 so far %.2f%%, %.0f img/s, eta %.0fs", spec.name, done, len(ids),
                 100 * correct / done, rate, (len(ids) - done) / rate)
    result = {"model": spec.name, "top1": 100 * correct / len(ids), "n": len(ids), "classes": len(classes),
              "resolution": spec.resolution, "crop_pct": spec.crop_pct, "interpolation": spec.interpolation,
              "val_root": str(val_root)}
    write_json(out_json, result)
    log.info("ImageNet top-1 of %s: %.3f%% on %d images", spec.name, result["top1"], len(ids))
    return result
