"""Per-example test predictions, saved by every final fit for the paired tests of the statistics stage.

File: `.npz` with `labels` (n,) and `scores` (n, K) float32 class scores (logits), in the split file's test order.
"""

from __future__ import annotations

import numpy as np

from transferbench.atomic import atomic_path


def save_predictions(path, labels, scores) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, labels=np.asarray(labels), scores=np.asarray(scores, dtype=np.float32))


def load_predictions(path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as data:
        return data["labels"], data["scores"]


def correct(labels, scores) -> np.ndarray:
    """Per-example correctness (single-label): argmax of the scores equals the label."""
    return np.asarray(scores).argmax(axis=1) == np.asarray(labels)
