"""The probe jobs (linear, knn) on a features file in the real HDF5 layout: outputs and bad-input errors."""

import json

import h5py
import numpy as np
import pytest

from transferbench.predictions import load_predictions
from transferbench.probe.run import run_knn_probe, run_linear_probe

pytestmark = pytest.mark.unit


def write_features(path, rng, n=(60, 30, 30), d=6, k=3, complete=True):
    centers = rng.normal(size=(k, d)) * 3
    with h5py.File(path, "w") as h5:
        for name, size in zip(("train", "val", "test"), n):
            labels = np.arange(size) % k
            group = h5.create_group(name)
            group.create_dataset("labels", data=labels)
            group.create_dataset("features", data=(centers[labels] + rng.normal(size=(size, d))).astype(np.float32))
        h5.attrs["model"], h5.attrs["split_hash"] = "m", "abc"
        h5.attrs["complete"] = complete


def test_job_writes_curve_choice_metric_and_predictions(tmp_path):
    write_features(tmp_path / "f.h5", np.random.default_rng(0))
    result = run_linear_probe(tmp_path / "f.h5", np.logspace(-2, 2, 5), "top1", tmp_path / "r.json",
                              tmp_path / "p.npz", num_classes=3, expected={"model": "m", "split_hash": "abc"})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert len(saved["path"]["val_metric"]) == 5 and saved["chosen_weight_decay"] in saved["path"]["weight_decays"]
    assert saved["value"] > 0.9 and saved["n_train"] == 90 and saved["refit"]["iterations"] > 0
    # every path value and the refit carry their iterations and certificate (relative duality gap), all met
    assert len(saved["path"]["iterations"]) == len(saved["path"]["certificate"]) == 5
    assert all(saved["path"]["certified"]) and max(saved["path"]["certificate"]) <= saved["path"]["tol"]
    assert saved["refit"]["certified"] and saved["refit"]["certificate"] <= saved["refit"]["tol"]
    labels, scores = load_predictions(tmp_path / "p.npz")
    assert scores.shape == (30, 3) and np.mean(scores.argmax(1) == labels) == pytest.approx(saved["value"])


def test_nan_features_error_names_the_file(tmp_path):
    path = tmp_path / "bad.h5"
    write_features(path, np.random.default_rng(0))
    with h5py.File(path, "a") as h5:
        h5["train"]["features"][4, 2] = np.inf
    with pytest.raises(ValueError, match=r"bad\.h5: train features contain NaN or inf \(first at row 4, column 2\)"):
        run_linear_probe(path, [1.0], "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=3)
    assert not (tmp_path / "r.json").exists()


def test_label_out_of_range_and_missing_class_errors_name_the_file(tmp_path):
    path = tmp_path / "labels.h5"
    write_features(path, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"labels\.h5: train: label 2 is out of range.*0\.\.1"):
        run_linear_probe(path, [1.0], "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=2)
    with h5py.File(path, "a") as h5:
        labels = h5["train"]["labels"][:]
        h5["train"]["labels"][:] = np.where(labels == 1, 0, labels)
    with pytest.raises(ValueError, match=r"labels\.h5: classes \[1\] have no training example"):
        run_linear_probe(path, [1.0], "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=3)


def test_incomplete_or_foreign_features_are_refused(tmp_path):
    path = tmp_path / "f.h5"
    write_features(path, np.random.default_rng(0), complete=False)
    with pytest.raises(ValueError, match="no completion mark"):
        run_linear_probe(path, [1.0], "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=3)
    write_features(path, np.random.default_rng(0))
    with pytest.raises(ValueError, match="split_hash: recorded 'abc', expected 'xyz'"):
        run_linear_probe(path, [1.0], "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=3,
                         expected={"split_hash": "xyz"})


KNN = {"ks": [1, 5, 200], "vote": "exp", "temperature": 0.07, "device": "cpu"}


def test_knn_job_writes_its_choice_metric_and_predictions(tmp_path):
    write_features(tmp_path / "f.h5", np.random.default_rng(0))
    result = run_knn_probe(tmp_path / "f.h5", "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=3,
                           settings=KNN, expected={"model": "m", "split_hash": "abc"})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved == json.loads(json.dumps(result)) and "test_scores" not in saved
    assert saved["mode"] == "knn" and saved["chosen_k"] in (1, 5) and saved["selection"]["ks_dropped"] == [200]
    assert saved["value"] > 0.9 and saved["n_train"] == 90 and saved["n_test"] == 30
    labels, scores = load_predictions(tmp_path / "p.npz")
    assert scores.shape == (30, 3) and np.mean(scores.argmax(1) == labels) == pytest.approx(saved["value"])


def test_knn_job_refuses_features_of_another_model_naming_the_file(tmp_path):
    write_features(tmp_path / "f.h5", np.random.default_rng(0))
    with pytest.raises(ValueError, match="f.h5"):
        run_knn_probe(tmp_path / "f.h5", "top1", tmp_path / "r.json", tmp_path / "p.npz", num_classes=3,
                      settings=KNN, expected={"model": "other", "split_hash": "abc"})
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "p.npz").exists()
