"""The probe jobs on cached features. `linear`: choose the L2 strength on val, refit on train+val, score test.
`knn`: choose k on val (bank: train), score test with train + val as the bank (transferbench.probe.knn).

On a training-set subset (the dataset-size sweep), the features of the subset's rows are taken from the cached file
(no re-extraction); the strength is chosen on the full val split and the final fit is on the subset alone (as for
the training modes, transferbench.train.run: val would swamp a subset of 1 example per class)."""

from __future__ import annotations

import logging
import time

import numpy as np

from transferbench import metrics
from transferbench.atomic import write_json
from transferbench.data.subsets import Subset
from transferbench.features.store import load_features
from transferbench.predictions import save_predictions
from transferbench.probe.knn import fit_knn_probe
from transferbench.probe.solver import LinearProbe

log = logging.getLogger(__name__)


def run_linear_probe(features_file, weight_decays, metric: str, out_json, predictions_out, num_classes: int,
                     max_iter: int = 1000, tol: float = 1e-4, refit_tol: float = 1e-6, device: str = "auto",
                     expected: dict | None = None, subset: Subset | None = None) -> dict:
    """Run the paper's linear-probe protocol on one features file and write its JSON and test predictions; with
    `subset`, on those rows of train (module docstring)."""
    try:
        data = load_features(features_file, expected)
        if subset is not None:
            rows = list(subset.positions)
            data["train"] = tuple(a[rows] for a in data["train"])
        probe = LinearProbe(weight_decays, max_iter=max_iter, tol=tol, refit_tol=refit_tol, device=device)
        path = probe.fit_path(data["train"], data["val"], metric=metric, num_classes=num_classes)
        train_val = (data["train"] if subset is not None
                     else tuple(np.concatenate([a, b]) for a, b in zip(data["train"], data["val"])))
        start = time.perf_counter()
        probe.fit(train_val, path.chosen_weight_decay, num_classes=num_classes)
        refit_time = time.perf_counter() - start
    except ValueError as error:
        raise ValueError(f"{features_file}: {error}") from error
    test_features, test_labels = data["test"]
    scores = probe.decision_function(test_features)
    value = metrics.score(metric, test_labels, scores)
    result = {
        "mode": "linear", "metric": metric, "value": value,
        "convention": "J = sum_i CE + (wd/2)||W||^2, bias unpenalized; scikit-learn C = 1/wd",
        "path": path.summary(), "chosen_weight_decay": path.chosen_weight_decay,
        "refit": {"objective": probe.objective_, "iterations": probe.n_iter_, "certificate": probe.certificate_,
                  "certified": probe.certified_, "tol": refit_tol, "fit_time_s": refit_time},
        "n_train": len(train_val[1]), "n_test": len(test_labels), "feature_dim": int(test_features.shape[1]),
        "subset": None if subset is None else subset.name,
        "head": "linear", "trainable_params": (int(test_features.shape[1]) + 1) * num_classes,
    }
    save_predictions(predictions_out, test_labels, scores)
    write_json(out_json, result)
    log.info("chose wd %.3g; test %s %.4f", path.chosen_weight_decay, metric, value)
    return result


def run_knn_probe(features_file, metric: str, out_json, predictions_out, num_classes: int, settings: dict,
                  expected: dict | None = None) -> dict:
    """Run the kNN probe (settings: the config's `knn` section: ks, vote, temperature, device) on one features file
    and write its JSON and test predictions."""
    data = load_features(features_file, expected)
    try:
        result = fit_knn_probe(data["train"], data["val"], data["test"], metric, ks=settings["ks"],
                               vote=settings["vote"], temperature=settings["temperature"], num_classes=num_classes,
                               device=settings["device"])
    except ValueError as error:
        raise ValueError(f"{features_file}: {error}") from error
    save_predictions(predictions_out, data["test"][1], result.pop("test_scores"))
    write_json(out_json, result)
    return result
