"""Penultimate-layer feature extraction into the HDF5 cache (layout: feature_store).

Features are the model's global-pooled pre-logits (timm's `num_classes=0` forward), computed without
augmentation: resize + centre crop at the model's resolution. Images come from the dataset's image cache (decoded
once per size for all models, image_cache; read a batch at a time) or are decoded here, in DataLoader workers either
way; batches are written as they arrive, so memory does not grow with the dataset. The file is written under a
temporary name and renamed when complete: a half-written file never looks done.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import h5py
import numpy as np
import timm
import torch
from torch.utils.data import DataLoader

from transferbench import __version__
from transferbench.atomic import atomic_path
from transferbench.data.image_cache import CachedImages, batch_slices
from transferbench.data.images import DecodedImages, Preprocessing, storage_size
from transferbench.data.splits import SPLITS, DatasetSpec, Split
from transferbench.features.store import IDENTITY_ATTRS, mismatches
from transferbench.inference import autocast, pick_device, prepare_model, to_device
from transferbench.models.spec import ModelSpec, build_model

log = logging.getLogger(__name__)


def feature_attrs(spec: ModelSpec, split: Split) -> dict:
    """What a features file must record to be reused: model, weights, preprocessing, split and versions."""
    return {
        "model": spec.name, "timm": spec.timm, "torchvision": spec.torchvision or "", "weights": spec.pretrained,
        "checkpoint": spec.checkpoint or "",
        "kwargs": json.dumps(spec.kwargs, sort_keys=True), "resolution": spec.resolution, "crop_pct": spec.crop_pct,
        "interpolation": spec.interpolation, "mean": list(spec.mean), "std": list(spec.std),
        "split_hash": split.hash, "dataset": split.dataset,
        "versions": json.dumps({"transferbench": __version__, "torch": torch.__version__, "timm": timm.__version__,
                                "h5py": h5py.__version__}),
    }


@torch.inference_mode()
def extract_to_hdf5(model_spec: ModelSpec, dataset_spec: DatasetSpec, split_file, out, batch_size: int = 256,
                    dtype: str = "float32", num_workers: int = 0, device: str = "auto", images_file=None) -> None:
    """Compute the features of every split of `dataset_spec` with `model_spec` and write them to `out`.

    `images_file`: the dataset's image cache at this model's storage size (image_cache); without it, images are
    decoded here."""
    spec = model_spec.with_preprocessing()
    split = Split.load(split_file)
    dev = pick_device(device)
    model = prepare_model(build_model(spec, num_classes=0, weights=True), dev).eval()
    preprocessing = Preprocessing(spec.resolution, spec.mean, spec.std, spec.interpolation)
    size = storage_size(spec.resolution, spec.crop_pct)
    total = sum(split.sizes().values())
    done, started = 0, time.perf_counter()
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        for name in SPLITS:
            ids, labels = split.select(name)
            group = h5.create_group(name)
            group.create_dataset("labels", data=labels)
            features = group.create_dataset("features", shape=(len(ids), model.num_features), dtype=dtype,
                                             chunks=(min(max(len(ids), 1), 1024), model.num_features))
            if images_file is not None:  # decoded once for every model at this size: read a batch at a time
                images = CachedImages(images_file, split, name, size, spec.interpolation)
                loader = DataLoader(images, batch_size=None, sampler=batch_slices(len(images), batch_size),
                                    num_workers=num_workers, pin_memory=dev.type == "cuda")
            else:
                loader = DataLoader(DecodedImages(dataset_spec, ids, size, spec.interpolation), batch_size=batch_size,
                                    num_workers=num_workers, pin_memory=dev.type == "cuda")
            row = 0
            for batch in loader:
                with autocast(dev):
                    out_batch = model(to_device(preprocessing.evaluation(batch), dev))
                with np.errstate(over="ignore"):  # float16 overflow becomes inf, caught just below
                    stored = out_batch.float().cpu().numpy().astype(dtype)
                if not np.isfinite(stored).all():  # after the cast: float16 overflow counts too
                    raise FloatingPointError(f"model '{spec.name}' gave NaN or inf {dtype} features on "
                                             f"'{dataset_spec.name}' {name}, rows {row}..{row + len(batch) - 1}")
                features[row:row + len(batch)] = stored
                row += len(batch)
                done += len(batch)
                rate = done / (time.perf_counter() - started)
                log.info("%s/%s %s: %d/%d images, %.0f img/s, eta %.0fs", spec.name, dataset_spec.name, name, done,
                         total, rate, (total - done) / rate)
        h5.attrs.update(feature_attrs(spec, split))
        h5.attrs["complete"] = True  # last: marks a finished file
    log.info("wrote features of %d images in %.1fs", total, time.perf_counter() - started)


def stale_reasons(path, model_spec: ModelSpec, split_file) -> list[str]:
    """Why an existing features file does not answer what the config asks now (empty: it does). A file without
    its completion mark or one that cannot be read (truncated) is stale too."""
    try:
        split = Split.load(split_file)
    except (FileNotFoundError, ValueError):
        return []  # the split is (re)made first, and everything after it reruns anyway
    expected = {k: v for k, v in feature_attrs(model_spec.with_preprocessing(), split).items() if k in IDENTITY_ATTRS}
    try:
        return mismatches(path, expected)
    except OSError as error:
        return [f"cannot be read ({error})"]


def stale_features(requests) -> list[tuple[str, list[str]]]:
    """(path, reasons) for each (features path, ModelSpec, split file) whose file exists but is stale. Reads only."""
    return [(str(path), reasons) for path, spec, split_file in requests
            if Path(path).exists() and (reasons := stale_reasons(path, spec, split_file))]


def mark_out_of_date(paths) -> None:
    """Set each file's modification time to the epoch, so Snakemake sees it older than its split file and recomputes
    it (and what depends on it). Nothing is deleted; the file is replaced only when the new one is complete."""
    for path in paths:
        os.utime(path, (0, 0))
