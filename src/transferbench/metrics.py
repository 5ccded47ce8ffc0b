"""Transfer metrics of the paper (Table 1): top-1, mean per-class accuracy, VOC 2007 11-point mAP.

All take numpy arrays. Single-label metrics take integer `labels` (n,) and `predictions` (n,) of class indices;
`mean_ap_11point` takes a binary label matrix (n, K) and real-valued scores (n, K). Values are fractions in [0, 1].
"""

from __future__ import annotations

import numpy as np

METRICS = ("top1", "mean_per_class", "map_11point")


def top1(labels, predictions) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float(np.mean(labels == predictions))


def mean_per_class(labels, predictions) -> float:
    """Mean over the classes present in `labels` of each class's accuracy (Aircraft, Pets, Caltech-101, Flowers)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    counts = np.bincount(labels)
    hits = np.bincount(labels, weights=labels == predictions, minlength=len(counts))
    present = counts > 0  # one pass instead of a loop over classes: the permutation tests call this thousands of times
    return float(np.mean(hits[present] / counts[present]))


def average_precision_11point(labels, scores) -> float:
    """VOC 2007 11-point interpolated AP of one binary problem: mean over recall r in {0, 0.1, ..., 1} of the
    maximum precision at recall >= r (0 where no such point exists)."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / max(int(hits.sum()), 1)
    points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]
    return float(np.mean(points))


def mean_ap_11point(labels, scores) -> float:
    """Mean over classes of the 11-point AP (PASCAL VOC 2007 classification)."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    return float(np.mean([average_precision_11point(labels[:, k], scores[:, k]) for k in range(labels.shape[1])]))


def score(metric: str, labels, outputs) -> float:
    """Score `outputs` (class scores (n, K), or predicted indices (n,) for single-label metrics) by `metric`."""
    if metric == "map_11point":
        return mean_ap_11point(labels, outputs)
    outputs = np.asarray(outputs)
    predictions = outputs.argmax(axis=1) if outputs.ndim == 2 else outputs
    if metric == "top1":
        return top1(labels, predictions)
    if metric == "mean_per_class":
        return mean_per_class(labels, predictions)
    raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")


def chance_level(metric: str, labels) -> float:
    """The metric of a classifier that always predicts the most frequent class (used for diverged runs)."""
    labels = np.asarray(labels)
    if metric == "map_11point":
        # Constant scores rank all examples equally: precision at full recall is the positive rate.
        return float(np.mean(labels.mean(axis=0)))
    majority = np.bincount(labels).argmax()
    return score(metric, labels, np.full_like(labels, majority))
