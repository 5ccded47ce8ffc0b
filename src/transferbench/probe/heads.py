"""Heads of growing capacity on frozen cached features (Vasconcelos et al. 2022: give the frozen backbone's
task-specific part more capacity): MLPs with `hidden_layers` hidden layers of `width` units (ReLU) before the
classifier. The linear head is the linear probe itself (transferbench.probe.solver); these are its deeper siblings.

Protocol (the linear probe's, on the same cached features, so no image is decoded again): every point of the head's
grid (learning rate x weight decay) trains on train and is scored on val; the best point (ties: the earlier point in
grid order) trains again on train + val and is scored on test. Training: AdamW (decoupled weight decay, the grid's
value as PyTorch's `weight_decay`), mini-batches in an order drawn from (seed, point), cosine decay to zero over
`steps`; features standardized with the training set's mean and standard deviation (an MLP's hidden layer is
sensitive to the feature scale, which differs by orders of magnitude between backbones). Loss and metric are the
training modes' (cross-entropy, or the sigmoid loss for multi-label data). A NaN loss marks the point diverged, with a
chance-level metric.

Trainable parameters of a head on d features for K classes: (d + 1) w + (L - 1)(w + 1) w + (w + 1) K for L hidden
layers of width w; the linear head's (d + 1) K.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
from torch import nn

from transferbench import metrics
from transferbench.atomic import write_json
from transferbench.features.store import load_features
from transferbench.predictions import save_predictions
from transferbench.seeding import derive_seed
from transferbench.sweeps import parse_head_name
from transferbench.train.loop import classification_loss

log = logging.getLogger(__name__)

def head_parameters(features: int, classes: int, hidden_layers: int = 0, width: int = 0) -> int:
    """Trainable parameters of a head (module docstring); hidden_layers 0 is the linear head."""
    if hidden_layers == 0:
        return (features + 1) * classes
    return (features + 1) * width + (hidden_layers - 1) * (width + 1) * width + (width + 1) * classes


def build_head(features: int, classes: int, hidden_layers: int, width: int) -> nn.Sequential:
    layers, inputs = [], features
    for _ in range(hidden_layers):
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, classes))


def train_head(train: tuple, evaluate: np.ndarray, hidden_layers: int, width: int, lr: float, weight_decay: float,
               steps: int, batch_size: int, num_classes: int, seed: int) -> np.ndarray | None:
    """Train a head on `train` (features, labels) and return its scores on the `evaluate` features (None: diverged)."""
    features, labels = (torch.as_tensor(a) for a in train)
    mean, std = features.float().mean(0), features.float().std(0).clamp_min(1e-6)
    x = (features.float() - mean) / std
    torch.manual_seed(seed)
    head = build_head(x.shape[1], num_classes, hidden_layers, width)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = np.random.default_rng(seed)
    order, at = rng.permutation(len(x)), 0
    for _ in range(steps):
        if at + batch_size > len(order):  # a new epoch's order once the current one runs out
            order, at = rng.permutation(len(x)), 0
        index = torch.as_tensor(order[at:at + batch_size])
        at += batch_size
        loss = classification_loss(head(x[index]), labels[index])
        if not math.isfinite(loss.item()):
            return None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        scores = head((torch.as_tensor(evaluate).float() - mean) / std).numpy()
    return scores if np.isfinite(scores).all() else None


def run_head_probe(features_file, head: str, grid: list[dict], settings: dict, metric: str, out_json,
                   predictions_out, num_classes: int, seed: int, expected: dict | None = None) -> dict:
    """The head protocol (module docstring) on one features file; writes its JSON and test predictions.
    `grid`: [{'lr', 'weight_decay'}]; `settings`: {'steps', 'batch_size'}."""
    hidden_layers, width = parse_head_name(head)
    data = load_features(features_file, expected)
    steps, batch_size = settings["steps"], settings["batch_size"]
    batch_size = min(batch_size, len(data["train"][1]))
    started = time.perf_counter()
    path = []
    for i, point in enumerate(grid):
        scores = train_head(data["train"], data["val"][0], hidden_layers, width, point["lr"], point["weight_decay"],
                            steps, batch_size, num_classes, derive_seed(seed, "head", head, i))
        value = (metrics.chance_level(metric, data["val"][1]) if scores is None
                 else metrics.score(metric, data["val"][1], scores))
        path.append({**point, "val": value, "diverged": scores is None})
        log.info("%s lr %g wd %g: val %s %.4f%s", head, point["lr"], point["weight_decay"], metric, value,
                 " (diverged)" if scores is None else "")
    chosen = max(range(len(path)), key=lambda i: (path[i]["val"], -i))  # ties: the earlier point
    train_val = tuple(np.concatenate([a, b]) for a, b in zip(data["train"], data["val"]))
    point = grid[chosen]
    scores = train_head(train_val, data["test"][0], hidden_layers, width, point["lr"], point["weight_decay"], steps,
                        batch_size, num_classes, derive_seed(seed, "head", head, "final"))
    if scores is None:
        raise RuntimeError(f"{features_file}: the {head} head's final fit diverged at lr {point['lr']} (chosen on "
                           "val): lower the heads grid's learning rates")
    test_labels = data["test"][1]
    value = metrics.score(metric, test_labels, scores)
    feature_dim = int(data["test"][0].shape[1])
    result = {
        "mode": "head", "head": head, "metric": metric, "value": value, "path": path,
        "chosen": {"lr": point["lr"], "weight_decay": point["weight_decay"]},
        "trainable_params": head_parameters(feature_dim, num_classes, hidden_layers, width),
        "n_train": len(train_val[1]), "n_test": len(test_labels), "feature_dim": feature_dim,
        "steps": steps, "batch_size": batch_size, "wall_time_s": time.perf_counter() - started,
        "convention": "AdamW (weight_decay decoupled), cosine to 0, features standardized with the fit set's stats",
    }
    save_predictions(predictions_out, test_labels, scores)
    write_json(out_json, result)
    log.info("%s: chose lr %g wd %g; test %s %.4f", head, point["lr"], point["weight_decay"], metric, value)
    return result
