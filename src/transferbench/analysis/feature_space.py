"""How separated the classes are in a model's penultimate features, computed from the cached features.

Class separation (Kornblith, Chen, Lee & Norouzi 2021, "Why Do Better Loss Functions Lead to Less Transferable
Features?", NeurIPS, Sec. 5): with sim(x, y) = x.y / (|x| |y|), K classes, N_k examples in class k,

    R^2 = 1 - d_within / d_total
    d_within = sum_k sum_{m, n in k} (1 - sim(x_m, x_n)) / (K N_k^2)
    d_total  = sum_{j, k} sum_{m in j, n in k} (1 - sim(x_m, x_n)) / (K^2 N_j N_k)

Pairs are ordered and include m = n (distance 0), as the paper's N_k^2 denominators say; every class weighs the
same whatever its size. R^2 lies in [0, 1] (mean_k |mu_k|^2 >= |mean_k mu_k|^2 below, by convexity): 1 when each
class's features share one direction, about 0 (order 1 / N_k, from the m = n pairs) when classes do not differ.
That paper finds that objectives which raise ImageNet accuracy (label smoothing, dropout, logit penalty, ...) give
*higher* R^2 and lower fixed-feature transfer accuracy; Kornblith et al. 2019 illustrate the regularizers' effect with
t-SNE maps of penultimate features (`tsne_embedding`).

No n x n matrix is formed: with u the L2-normalized features and mu_k the mean of u over class k, a class's mean
distance is 1 - |mu_k|^2 and the class-balanced overall one is 1 - |mean_k mu_k|^2, so

    d_within = 1 - mean_k |mu_k|^2,    d_total = 1 - |mean_k mu_k|^2,

O(n d) time, float64 sums over row blocks (features may be a numpy array or an h5py dataset, read block by block).
Since |u| = 1, 1 - |mu|^2 is also the variance of u: R^2 is the share of the (class-balanced) variance of the
normalized features explained by the class means, which `variance_ratio` computes for features as they are.
"""

from __future__ import annotations

from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd
import torch

from transferbench.features.store import mismatches

BLOCK_ROWS = 8192  # rows read and normalized at a time (float64: 256 MiB at 4096 dimensions)
SPLIT = "train"  # the split measured: the features the probes learn from, the largest split of most datasets


def feature_space_table(files: dict, split: str = SPLIT) -> pd.DataFrame:
    """One row per (model, dataset) features file: class_separation (R^2 above) and variance_ratio of its `split`,
    read block by block from the HDF5 file. Multi-label data (PASCAL VOC 2007) has no class separation: its row
    says so in `note`. files: {(model, dataset): path of a finished features file}."""
    rows = []
    for (model, dataset), path in sorted(files.items()):
        problems = mismatches(path, {})
        if problems:
            raise ValueError(f"features file {path}: {'; '.join(problems)}")
        row = {"model": model, "dataset": dataset, "split": split, "class_separation": np.nan,
               "variance_ratio": np.nan, "n": 0, "note": ""}
        with h5py.File(path, "r") as h5:
            features, labels = h5[split]["features"], h5[split]["labels"][:]
            row["n"] = len(labels)
            if labels.ndim == 2:
                row["note"] = "multi-label: no class separation"
            else:
                row["class_separation"] = class_separation(features, labels)
                row["variance_ratio"] = variance_ratio(features, labels)
        rows.append(row)
    return pd.DataFrame(rows)


def class_separation(features, labels, block_rows: int = BLOCK_ROWS) -> float:
    """Kornblith et al. 2021's R^2 = 1 - d_within / d_total of cosine distances (module docstring), in [0, 1].
    features: (n, d), no zero rows; labels: (n,) class ids, at least two distinct."""
    d_within, d_total = mean_cosine_distances(features, labels, block_rows)
    return 1.0 - d_within / d_total


def mean_cosine_distances(features, labels, block_rows: int = BLOCK_ROWS) -> tuple[float, float]:
    """(d_within, d_total) of the module docstring: the class-balanced mean cosine distance over ordered pairs,
    self-pairs included, within classes and over all pairs."""
    codes, counts = _class_codes(features, labels)
    sums = torch.zeros(len(counts), np.shape(features)[1], dtype=torch.float64)
    for start, block in _blocks(features, block_rows):
        norms = block.norm(dim=1, keepdim=True)
        if (norms == 0).any():
            row = start + int((norms[:, 0] == 0).nonzero()[0])
            raise ValueError(f"features row {row} is all zeros: its cosine similarity is undefined")
        sums.index_add_(0, torch.as_tensor(codes[start:start + len(block)]), block / norms)
    class_means = sums / torch.as_tensor(counts, dtype=torch.float64)[:, None]
    d_within = 1.0 - float(class_means.pow(2).sum(1).mean())
    d_total = 1.0 - float(class_means.mean(0).pow(2).sum())
    if d_total <= 1e-12:
        raise ValueError("all features point in the same direction: class separation is undefined")
    return d_within, d_total


def variance_ratio(features, labels, block_rows: int = BLOCK_ROWS) -> float:
    """trace(S_B) / trace(S_T): the share of the features' total variance explained by the class means, summed over
    dimensions (the R^2 of regressing the features on class indicators). Every example weighs the same, and the
    features are taken as they are: on L2-normalized features with balanced classes this equals
    `class_separation`. Two passes over the rows (mean first), so a large common mean does not cancel."""
    codes, counts = _class_codes(features, labels)
    sums = torch.zeros(len(counts), np.shape(features)[1], dtype=torch.float64)
    for start, block in _blocks(features, block_rows):
        sums.index_add_(0, torch.as_tensor(codes[start:start + len(block)]), block)
    counts = torch.as_tensor(counts, dtype=torch.float64)
    mean = sums.sum(0) / counts.sum()
    between = float((counts * (sums / counts[:, None] - mean).pow(2).sum(1)).sum())
    total = sum(float((block - mean).pow(2).sum()) for _, block in _blocks(features, block_rows))
    if total <= 0:
        raise ValueError("all feature vectors are identical: the variance ratio is undefined")
    return between / total


class Embedding(NamedTuple):
    coords: np.ndarray  # (m, 2) t-SNE coordinates
    labels: np.ndarray  # (m,) class ids of the embedded examples
    indices: np.ndarray  # (m,) their rows in the input, ascending


def tsne_embedding(features, labels, classes=10, seed: int = 0, max_per_class: int = 100,
                   perplexity: float = 30.0) -> Embedding:
    """A 2-d t-SNE map of a few classes, for figures in the manner of Kornblith et al. 2019.

    Classes: `classes` distinct ids drawn by np.random.default_rng(seed).choice from the sorted ids present, without
    replacement (a seeded draw, not the first ids: neighbouring ids are often sibling classes, e.g. Aircraft's Boeing
    7x7 variants), or the ids given as a sequence. Examples: at most `max_per_class` per class, drawn by the same
    generator (classes in ascending order). With the same labels and seed every model gets the same examples, so
    its panels compare. The features are L2-normalized (cosine geometry, as `class_separation`) and embedded by
    scikit-learn's TSNE (init='pca', random_state=seed; perplexity capped at (m - 1) / 3 for small m).
    """
    from sklearn.manifold import TSNE  # imported here: only the figures need it

    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(features):
        raise ValueError(f"labels must be (n,) class ids, one per feature row; got shape {labels.shape} for "
                         f"{len(features)} rows")
    rng = np.random.default_rng(seed)
    present = np.unique(labels)
    if np.ndim(classes) == 0:
        if not 1 <= classes <= len(present):
            raise ValueError(f"classes = {classes}: choose between 1 and the {len(present)} classes present")
        chosen = np.sort(rng.choice(present, size=int(classes), replace=False))
    else:
        chosen = np.unique(classes)
        missing = np.setdiff1d(chosen, present)
        if len(missing):
            raise ValueError(f"classes {missing.tolist()} have no examples")
    rows = []
    for c in chosen:
        members = np.flatnonzero(labels == c)
        rows.append(members if len(members) <= max_per_class else rng.choice(members, max_per_class, replace=False))
    indices = np.sort(np.concatenate(rows))
    if len(indices) < 2:
        raise ValueError("t-SNE needs at least two examples")
    points = np.asarray(features[indices] if hasattr(features, "shape") else np.asarray(features)[indices],
                        dtype=np.float64)
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    if not (np.isfinite(points).all() and (norms > 0).all()):
        raise ValueError("features to embed contain NaN, inf or all-zero rows")
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(perplexity, (len(indices) - 1) / 3))
    return Embedding(tsne.fit_transform(points / norms), labels[indices], indices)


def _class_codes(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """Class codes 0..K-1 of every row (classes in sorted order) and the count of each class."""
    labels = np.asarray(labels)
    if len(np.shape(features)) != 2:
        raise ValueError(f"features must be (examples x dimensions), got shape {np.shape(features)}")
    if labels.ndim != 1 or len(labels) != np.shape(features)[0]:
        raise ValueError(f"labels must be (n,) class ids, one per feature row: got shape {labels.shape} for "
                         f"{np.shape(features)[0]} rows (multi-label data has no class separation)")
    present, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(present) < 2:
        raise ValueError(f"class separation needs at least two classes, got {len(present)}")
    return codes.astype(np.int64), counts


def _blocks(features, block_rows: int):
    """(start, float64 tensor) over row blocks; NaN or inf is an error naming the first bad row."""
    for start in range(0, np.shape(features)[0], block_rows):
        block = torch.as_tensor(np.asarray(features[start:start + block_rows], dtype=np.float64))
        finite = torch.isfinite(block).all(1)
        if not finite.all():
            raise ValueError(f"features row {start + int((~finite).nonzero()[0])} contains NaN or inf")
        yield start, block
