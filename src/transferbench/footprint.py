"""What a study will cost before it runs: the disk of its image caches and features, and the GPU-hours of its jobs.

Projected, not measured, from three things: the plan (which caches and feature files exist, how many training jobs
of how many steps at which batch size: the workflow's own job list), the datasets' sizes (the paper's published
counts, or the split file where one has been made), and rates the config states (`footprint`): bytes per cached
pixel (the image cache's quality-95 JPEGs at storage size: 0.38 bytes per RGB pixel on photo-like images,
benchmarks/cache_footprint.py; originals smaller than that, such as CIFAR's 32 px, are kept as they are: counted as
their raw pixels where the dataset states its image side), and
images per GPU-second for training (forward + backward) and for extraction (forward). One rate for every model is an
average: a MobileNet runs several times faster than NASNet-A Large; state your GPU's and your models' rates. The
probes (linear and knn) run on CPU and are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

GB = 1e9
COLUMNS = ["kind", "name", "jobs", "images", "bytes", "gpu_hours"]


@dataclass(frozen=True)
class TrainingJobs:
    """Jobs of one model x dataset x mode (or sweep run) that train alike: `jobs` runs of `steps` x `batch_size`."""

    model: str
    dataset: str
    mode: str
    jobs: int
    steps: int
    batch_size: int


def project(dataset_images: dict, caches, feature_pairs, feature_dims: dict, bytes_per_feature: int,
            training: list[TrainingJobs], rates: dict, imagenet_val_models: int = 0,
            image_sides: dict | None = None) -> pd.DataFrame:
    """One row per image cache, features file, training group and extraction, with its bytes and GPU-hours.

    dataset_images: {dataset: images in its train + val + test, or None if not known yet}; caches: (dataset, storage
    size, interpolation) triples; feature_pairs: (model, dataset); feature_dims: {model: penultimate width};
    rates: the config's `footprint` section; imagenet_val_models: models whose ImageNet top-1 is measured (50,000
    val images each); image_sides: {dataset: side in pixels} where every original is that small. Unknown sizes give
    empty bytes and hours (the summary names them)."""
    rows = []
    for dataset, size, interpolation in sorted(caches):
        n = dataset_images.get(dataset)
        per_image = size * size * rates["cache_bytes_per_pixel"]
        side = (image_sides or {}).get(dataset)
        if side:
            per_image = min(per_image, 3 * side * side)  # the small original, kept as it is
        rows.append(("image cache", f"{dataset} {size} px {interpolation}", 1, n,
                     None if n is None else n * per_image, 0.0))
    for model, dataset in sorted(feature_pairs):
        n = dataset_images.get(dataset)
        rows.append(("features", f"{model} / {dataset}", 1, n,
                     None if n is None else n * feature_dims[model] * bytes_per_feature,
                     None if n is None else n / rates["extract_images_per_gpu_second"] / 3600))
    if imagenet_val_models:
        n = 50_000 * imagenet_val_models
        rows.append(("imagenet top-1", "ImageNet val", imagenet_val_models, n, 0.0,
                     n / rates["extract_images_per_gpu_second"] / 3600))
    for group in training:
        images = group.jobs * group.steps * group.batch_size
        rows.append(("training", f"{group.mode} {group.model} / {group.dataset}", group.jobs, images, 0.0,
                     images / rates["train_images_per_gpu_second"] / 3600))
    return pd.DataFrame(rows, columns=COLUMNS)


def _hours(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 10 else f"{hours:.2g}"


def summary(table: pd.DataFrame, unknown=()) -> str:
    """A few lines: disk per kind, GPU-hours per kind, and the datasets whose size is not known yet."""
    lines = [f"transferbench footprint: disk {table['bytes'].sum() / GB:,.1f} GB, "
             f"GPU {_hours(table['gpu_hours'].sum())} hours (projected: rates from the config's `footprint`)"]
    for kind, rows in table.groupby("kind", sort=False):
        counted = f"{int(rows['jobs'].sum()):,} job(s)" if kind in ("training", "imagenet top-1") else \
            f"{len(rows):,} file(s)"
        parts = [counted]
        if rows["bytes"].sum():
            parts.append(f"{rows['bytes'].sum() / GB:,.1f} GB")
        if rows["gpu_hours"].sum():
            parts.append(f"{_hours(rows['gpu_hours'].sum())} GPU-hours")
        lines.append(f"  {kind}: " + ", ".join(parts))
    if unknown:
        lines.append("  not projected, their size unknown until their split file exists (results/splits/): "
                     + ", ".join(unknown))
    return "\n".join(lines)
