"""Shared fixtures: data generated in the real on-disk layout, models built through timm (no hub weights)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from transferbench.datasets import DatasetSpec, make_split


def write_imagefolder(root, classes=("a", "b", "c"), per_class=(12, 6), size=20, seed=0, val_per_class=0):
    """A JPEG ImageFolder tree root/{train,test[,val]}/<class>/<n>.jpg whose classes differ in mean colour."""
    rng = np.random.default_rng(seed)
    splits = {"train": per_class[0], "test": per_class[1]}
    if val_per_class:
        splits["val"] = val_per_class
    for split, n in splits.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros((size, size + 4, 3)) + 60 * c
                pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=95)
    return root


@pytest.fixture
def imagefolder(tmp_path):
    return write_imagefolder(tmp_path / "folder")


@pytest.fixture
def imagefolder_split(imagefolder, tmp_path):
    spec = DatasetSpec(name="toy", source="imagefolder", metric="top1", root=str(imagefolder), val_fraction=0.25)
    split = make_split(spec, seed=0)
    path = tmp_path / "split.json"
    split.save(path)
    return spec, split, path
