"""The HDF5 layout of cached features, one file per model x dataset (reading needs no model library).

    /{train,val,test}/features  (n, num_features) float32 or float16, chunked, written batch by batch
    /{train,val,test}/labels    (n,) int64
    attrs: model, timm, torchvision, weights, checkpoint, kwargs, resolution, crop_pct, interpolation, mean, std,
    dataset,
           split_hash, library versions, and `complete` = True, written last.
"""

from __future__ import annotations

import h5py
import numpy as np

from transferbench.data.splits import SPLITS

# Attributes that decide whether a cached file still answers what the config asks (issue: the cache never lies).
IDENTITY_ATTRS = ("model", "timm", "torchvision", "weights", "checkpoint", "kwargs", "resolution", "crop_pct",
                  "interpolation",
                  "mean", "std", "dataset", "split_hash")


def mismatches(path, expected: dict) -> list[str]:
    """Human-readable differences between a file's recorded identity and `expected` (empty: reusable)."""
    problems = []
    with h5py.File(path, "r") as h5:
        if not h5.attrs.get("complete", False):
            return ["no completion mark (the extraction did not finish)"]
        for key in IDENTITY_ATTRS:
            if key in expected:
                recorded = h5.attrs.get(key)
                if recorded is None or not np.array_equal(np.asarray(recorded), np.asarray(expected[key])):
                    shown = None if recorded is None else np.asarray(recorded).tolist()
                    problems.append(f"{key}: recorded {shown!r}, expected {expected[key]!r}")
    return problems


def load_features(path, expected: dict | None = None) -> dict:
    """{split: (features float32 (n, d), labels (n,))} from a finished features file.

    Refuses a file without the completion mark, or (with `expected`) one made for another model, weights,
    preprocessing or split.
    """
    try:
        problems = mismatches(path, expected or {})
    except OSError as error:
        raise ValueError(f"features file {path} cannot be read ({error}); delete it and rerun extraction") from error
    if problems:
        raise ValueError(f"features file {path} does not match: {'; '.join(problems)}; delete it and rerun extraction")
    with h5py.File(path, "r") as h5:
        return {name: (h5[name]["features"][:].astype(np.float32), h5[name]["labels"][:]) for name in SPLITS}


def read_attrs(path) -> dict:
    with h5py.File(path, "r") as h5:
        return dict(h5.attrs)
