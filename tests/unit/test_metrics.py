import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from transferbench import metrics

pytestmark = pytest.mark.unit


def test_top1_hand_computed():
    assert metrics.top1([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75


def test_mean_per_class_weights_classes_equally():
    # class 0: 3/4 right, class 1: 0/1 right -> (0.75 + 0) / 2, while top-1 is 3/5
    labels, preds = [0, 0, 0, 0, 1], [0, 0, 0, 1, 0]
    assert metrics.mean_per_class(labels, preds) == pytest.approx(0.375)
    assert metrics.top1(labels, preds) == pytest.approx(0.6)


def test_mean_per_class_matches_sklearn_balanced_accuracy():
    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 7, 300), rng.integers(0, 7, 300)
    assert metrics.mean_per_class(labels, preds) == pytest.approx(balanced_accuracy_score(labels, preds))


def test_11point_ap_hand_computed():
    # ranking: +, -, +, -  -> precision at recall 0.5 is 1, at recall 1 is 2/3
    # 11-point: r in {0..0.5} (6 points) -> 1; r in {0.6..1} (5 points) -> 2/3
    ap = metrics.average_precision_11point([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    assert ap == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


def test_11point_ap_perfect_ranking_is_one_and_map_averages_classes():
    labels = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.1], [0.8, 0.3], [0.1, 0.9]])
    # class 0 perfect -> 1; class 1: ranking -, +(0.1 ties with a negative 0.1 at the end: stable order keeps row 1
    # first)
    ap1 = metrics.average_precision_11point(labels[:, 1], scores[:, 1])
    assert metrics.average_precision_11point(labels[:, 0], scores[:, 0]) == 1.0
    assert metrics.mean_ap_11point(labels, scores) == pytest.approx((1 + ap1) / 2)


def test_score_dispatches_and_rejects_unknown_metric():
    scores = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert metrics.score("top1", [1, 0], scores) == 1.0
    with pytest.raises(ValueError, match="valid|expected one of"):
        metrics.score("top5", [1, 0], scores)


def test_chance_level_is_majority_class():
    assert metrics.chance_level("top1", [0, 0, 0, 1]) == 0.75
    assert metrics.chance_level("mean_per_class", [0, 0, 0, 1]) == 0.5
