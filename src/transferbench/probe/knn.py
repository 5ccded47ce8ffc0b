"""The `knn` mode: a k-nearest-neighbour classifier on cached features, the cheap probe that self-supervised papers
report beside the linear one (Wu et al. 2018; Caron et al. 2021, DINO).

Convention. Features are L2-normalized, not centered (DINO's convention; centering by a training mean would make
the geometry depend on which split is the bank), and neighbours are ranked by cosine similarity. A query's score
for class c is the weighted fraction of its k nearest bank examples that belong to c:

    score_c = sum_j w_j [label_j = c] / sum_j w_j,   w_j = exp(sim_j / T)  (vote="exp", DINO: T = 0.07, k = 20)
                                                     w_j = 1               (vote="uniform": a majority vote)

For multi-label data (labels a 0/1 matrix (n, K), PASCAL VOC 2007) [label_j = c] is label_j[c]: the weighted
fraction of neighbours positive for c, ranked by the dataset's metric (11-point mAP). Scores lie in [0, 1] and the
predicted class is their argmax.

Ties, all resolved deterministically on a given device:
- equal similarities: the lower bank index is the nearer neighbour (bank = train, or train then val);
- equal class scores: the lower class index is predicted (numpy's argmax, as `metrics.score` applies it);
- equal validation scores: the larger k is chosen (the smoother classifier; the linear probe likewise prefers the
  stronger regularization).

Protocol, as the linear probe's: k is chosen on val with train as the bank, from a candidate list (KS by default;
candidates larger than the train split are dropped and recorded; a single value fixes k), then train + val is the
bank and test is scored. A zero feature vector has no direction, so it is rejected like NaN.

Similarities are computed in float32 with torch, on CPU or GPU, in blocks of queries x bank rows: memory beyond the
features is one block of similarities and the k best of each query, never a queries x bank matrix.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from transferbench import metrics
from transferbench.inference import pick_device

log = logging.getLogger(__name__)

KS = (1, 5, 10, 20, 50, 100)  # candidate k for selection on val
TEMPERATURE = 0.07  # DINO's temperature of the exponential vote
VOTES = ("exp", "uniform")
QUERIES_PER_BLOCK = 1024
BANK_ROWS_PER_BLOCK = 16384  # with QUERIES_PER_BLOCK: 64 MiB of float32 similarities at a time


def fit_knn_probe(train, val, test, metric: str, ks=KS, vote: str = "exp", temperature: float = TEMPERATURE,
                  num_classes: int | None = None, device: str = "auto", queries_per_block: int = QUERIES_PER_BLOCK,
                  bank_rows_per_block: int = BANK_ROWS_PER_BLOCK) -> dict:
    """Choose k on val (bank: train), then score test with train + val as the bank.

    train, val, test: (features (n, d), labels (n,) class indices or (n, K) 0/1) as `load_features` returns them.
    ks: candidate values of k (an int fixes k). Returns the job's record, in the linear probe's layout: `value` (the
    test metric), `chosen_k`, `selection` (ks, val_metric per k, ks_dropped), sizes and timings, all JSON-ready, and
    `test_scores` (n_test, K) float32 for `save_predictions` (take it out before writing the JSON).
    """
    if vote not in VOTES:
        raise ValueError(f"unknown vote {vote!r}: expected one of {', '.join(VOTES)}")
    if vote == "exp" and not temperature > 0:
        raise ValueError(f"temperature must be positive for the exponential vote, got {temperature}")
    splits = {"train": train, "val": val, "test": test}
    num_classes = _check_splits(splits, metric, num_classes)
    candidates, dropped = _candidate_ks(ks, bank_size=len(train[1]))
    if len(candidates) > 1 and len(val[1]) == 0:
        raise ValueError(f"val is empty: choosing k among {candidates} needs validation examples (or fix one k)")
    device = pick_device(device)
    blocks = {"queries_per_block": queries_per_block, "bank_rows_per_block": bank_rows_per_block}
    votes = {"vote": vote, "temperature": temperature, "num_classes": num_classes}

    start = time.perf_counter()
    val_metric = [None] * len(candidates)  # None: not scored (an empty val with k fixed)
    if len(val[1]):
        bank, bank_labels = _unit_rows(train[0], device), _labels(train[1], device)
        similarities, indices = nearest_neighbours(_unit_rows(val[0], device), bank, max(candidates), **blocks)
        del bank
        for i, k in enumerate(candidates):
            scores = _vote(similarities[:, :k], bank_labels[indices[:, :k]], **votes)
            val_metric[i] = metrics.score(metric, val[1], scores.cpu().numpy())
            log.info("k = %d: val %s %.4f", k, metric, val_metric[i])
        del similarities, indices
    # Ties to the larger k: scan from the largest, argmax takes the first maximum.
    chosen = candidates[::-1][int(np.argmax(val_metric[::-1]))] if len(candidates) > 1 else candidates[0]
    selection_time = time.perf_counter() - start

    start = time.perf_counter()
    bank_features = np.concatenate([train[0], val[0]])
    bank_labels = np.concatenate([train[1], val[1]])
    test_scores = knn_scores(bank_features, bank_labels, test[0], chosen, device=device, **votes, **blocks)
    value = metrics.score(metric, test[1], test_scores)
    log.info("chose k = %d; test %s %.4f", chosen, metric, value)
    return {
        "mode": "knn", "metric": metric, "value": value,
        "convention": ("cosine similarity of L2-normalized features; class score = sum_j w_j [label_j = c] / sum_j "
                       "w_j over the k nearest bank examples, w_j = exp(sim_j / T) (vote 'exp') or 1 ('uniform'); "
                       "similarity ties to the lower bank index, k ties to the larger k; bank for test = train + val"),
        "vote": vote, "temperature": temperature if vote == "exp" else None,
        "selection": {"ks": candidates, "val_metric": val_metric, "ks_dropped": dropped, "bank": len(train[1]),
                      "time_s": selection_time},
        "chosen_k": chosen,
        "n_train": len(bank_labels), "n_test": len(test[1]), "feature_dim": int(np.shape(test[0])[1]),
        "test_time_s": time.perf_counter() - start,
        "test_scores": test_scores.astype(np.float32),
    }


def knn_scores(bank_features, bank_labels, query_features, k: int, vote: str = "exp",
               temperature: float = TEMPERATURE, num_classes: int | None = None, device: str | torch.device = "auto",
               queries_per_block: int = QUERIES_PER_BLOCK, bank_rows_per_block: int = BANK_ROWS_PER_BLOCK):
    """Class scores (n_queries, K) float64 of every query: the weighted fraction of its k nearest bank examples in
    each class (module docstring). Inputs are not checked here; `fit_knn_probe` checks them."""
    device = pick_device(device) if isinstance(device, str) else device
    labels = np.asarray(bank_labels)
    num_classes = num_classes or (labels.shape[1] if labels.ndim == 2 else int(labels.max()) + 1)
    similarities, indices = nearest_neighbours(_unit_rows(query_features, device), _unit_rows(bank_features, device),
                                               k, queries_per_block, bank_rows_per_block)
    scores = _vote(similarities, _labels(labels, device)[indices], vote, temperature, num_classes)
    return scores.cpu().numpy()


def nearest_neighbours(queries: torch.Tensor, bank: torch.Tensor, k: int, queries_per_block: int = QUERIES_PER_BLOCK,
                       bank_rows_per_block: int = BANK_ROWS_PER_BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar bank rows of every query, by dot product (cosine for unit rows), ordered by similarity,
    equal similarities by bank index: similarities (n_queries, k) float32 and bank indices (n_queries, k) int64."""
    n_queries, n_bank = len(queries), len(bank)
    if not 1 <= k <= n_bank:
        raise ValueError(f"k = {k} must be between 1 and the bank's {n_bank} examples")
    out_similarities = torch.empty(n_queries, k, device=queries.device)
    out_indices = torch.empty(n_queries, k, dtype=torch.int64, device=queries.device)
    for q in range(0, n_queries, queries_per_block):
        block = queries[q:q + queries_per_block]
        best = block.new_empty(len(block), 0), torch.empty(len(block), 0, dtype=torch.int64, device=block.device)
        for b in range(0, n_bank, bank_rows_per_block):
            similarities = block @ bank[b:b + bank_rows_per_block].T
            top_similarities, top_columns = _top_k(similarities, min(k, similarities.shape[1]))
            # The kept neighbours all have lower indices than this block's: a stable sort of the two lists, each in
            # (similarity desc, index asc) order, keeps that order among equal similarities.
            merged = torch.cat([best[0], top_similarities], 1), torch.cat([best[1], top_columns + b], 1)
            order = torch.sort(merged[0], dim=1, descending=True, stable=True).indices[:, :k]
            best = merged[0].gather(1, order), merged[1].gather(1, order)
        out_similarities[q:q + len(block)], out_indices[q:q + len(block)] = best
    return out_similarities, out_indices


def _top_k(similarities: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest entries of each row and their columns, in (value desc, column asc) order. torch.topk leaves
    equal values in no stated order: its result is put in that order, and rows where equal values straddle the
    k-th place (rare: duplicate features) are taken from a full stable sort instead."""
    values, columns = torch.topk(similarities, k, dim=1)
    by_column = torch.sort(columns, dim=1).indices  # (value desc, column asc): sort by column, then stably by value
    values, columns = values.gather(1, by_column), columns.gather(1, by_column)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    values, columns = values.gather(1, order), columns.gather(1, order)
    straddling = ((similarities >= values[:, -1:]).sum(1) > k).nonzero()[:, 0]
    if len(straddling):
        full = torch.sort(similarities[straddling], dim=1, descending=True, stable=True)
        values[straddling], columns[straddling] = full.values[:, :k], full.indices[:, :k]
    return values, columns


def _vote(similarities: torch.Tensor, neighbour_labels: torch.Tensor, vote: str, temperature: float,
          num_classes: int) -> torch.Tensor:
    """Class scores (n, K) float64 from the similarities (n, k), nearest first, and labels of the neighbours: class
    indices (n, k), or 0/1 rows (n, k, K)."""
    if vote == "uniform":
        weights = torch.ones_like(similarities, dtype=torch.float64)
    else:  # relative to the nearest neighbour's: the same fractions, and exp cannot overflow
        weights = torch.exp((similarities - similarities[:, :1]).double() / temperature)
    if neighbour_labels.ndim == 3:
        votes = torch.einsum("nj,njc->nc", weights, neighbour_labels.double())
    else:
        votes = torch.zeros(len(weights), num_classes, dtype=torch.float64, device=weights.device)
        votes.scatter_add_(1, neighbour_labels, weights)
    return votes / weights.sum(1, keepdim=True)


def _unit_rows(features, device: torch.device) -> torch.Tensor:
    rows = torch.as_tensor(np.asarray(features, dtype=np.float32), device=device)
    return rows / rows.norm(dim=1, keepdim=True)


def _labels(labels, device: torch.device) -> torch.Tensor:
    labels = np.asarray(labels)
    return torch.as_tensor(labels.astype(np.int64) if labels.ndim == 1 else labels.astype(np.float32), device=device)


def _candidate_ks(ks, bank_size: int) -> tuple[list[int], list[int]]:
    """The candidates (ascending, deduplicated) that fit in the bank, and those dropped for not fitting."""
    ks = [ks] if np.ndim(ks) == 0 else list(ks)
    if not ks:
        raise ValueError("ks is empty: give at least one candidate k")
    for k in ks:
        if isinstance(k, bool) or not float(k).is_integer() or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
    ks = sorted({int(k) for k in ks})
    fitting = [k for k in ks if k <= bank_size]
    if not fitting:
        raise ValueError(f"k = {ks[0]} is larger than the neighbour bank: train has {bank_size} examples; "
                         f"choose k <= {bank_size}")
    return fitting, [k for k in ks if k > bank_size]


def _check_splits(splits: dict, metric: str, num_classes: int | None) -> int:
    """Check features and labels of every split; return the number of classes."""
    if len(splits["train"][1]) == 0:
        raise ValueError("train is empty: the neighbour bank needs at least one example")
    if len(splits["test"][1]) == 0:
        raise ValueError("test is empty: there is nothing to score")
    multilabel = np.ndim(splits["train"][1]) == 2
    if multilabel != (metric == "map_11point"):
        raise ValueError(f"metric {metric!r} does not fit {'multi' if multilabel else 'single'}-label data: "
                         "use map_11point for 0/1 label matrices and top1 or mean_per_class for class indices")
    if num_classes is None:
        num_classes = (np.shape(splits["train"][1])[1] if multilabel
                       else 1 + max(int(np.max(labels)) for _, labels in splits.values() if len(labels)))
    for name, (features, labels) in splits.items():
        features, labels = np.asarray(features), np.asarray(labels)
        if features.ndim != 2:
            raise ValueError(f"{name} features must be a 2-D array (examples x dimensions), got shape {features.shape}")
        if features.shape[1] != np.shape(splits["train"][0])[1]:
            raise ValueError(f"{name} features have {features.shape[1]} dimensions, train's "
                             f"{np.shape(splits['train'][0])[1]}")
        if len(features) != len(labels):
            raise ValueError(f"{name}: {len(features)} feature rows but {len(labels)} labels")
        if not np.isfinite(features).all():
            bad = np.argwhere(~np.isfinite(features))[0]
            raise ValueError(f"{name} features contain NaN or inf (first at row {bad[0]}, column {bad[1]})")
        zero = np.flatnonzero(~features.any(axis=1))
        if len(zero):
            raise ValueError(f"{name} features: row {zero[0]} is all zeros, which has no cosine similarity "
                             f"({len(zero)} such rows)")
        if (labels.ndim == 2) != multilabel:
            raise ValueError(f"{name} labels have shape {labels.shape}, train's {np.shape(splits['train'][1])}: "
                             "all splits must be single-label (n,) or all multi-label (n, K)")
        if multilabel:
            if labels.shape[1] != num_classes or not np.isin(labels, (0, 1)).all():
                raise ValueError(f"{name}: multi-label targets must be a 0/1 matrix with {num_classes} columns")
        elif len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise ValueError(f"{name}: label {bad} is out of range; labels must be class indices "
                             f"0..{num_classes - 1}")
    return num_classes
