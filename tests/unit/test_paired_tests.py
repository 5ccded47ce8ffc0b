import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from transferbench.analysis import paired_tests
from transferbench.predictions import save_predictions

pytestmark = pytest.mark.unit


def test_mcnemar_is_the_binomial_test_on_discordant_examples():
    rng = np.random.default_rng(0)
    a, b = rng.random(300) < 0.8, rng.random(300) < 0.7
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    expected = binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert paired_tests.mcnemar_p(a, b) == pytest.approx(expected)


def test_permutation_test_separates_equal_from_different_models():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 400)
    good = np.where(rng.random(400) < 0.9, labels, (labels + 1) % 5)
    bad = np.where(rng.random(400) < 0.6, labels, (labels + 1) % 5)
    assert paired_tests.permutation_p("mean_per_class", labels, good, good, n_perm=200) == 1.0
    assert paired_tests.permutation_p("mean_per_class", labels, good, bad, n_perm=200) == pytest.approx(1 / 201)


def write_models(tmp_path, labels, predictions, metric="top1"):
    rows = []
    for name, pred in predictions.items():
        path = tmp_path / f"{name}.npz"
        scores = np.eye(5)[pred] if pred.ndim == 1 else pred
        save_predictions(path, labels, scores)
        value = float(np.mean(pred == labels))
        rows.append({"model": name, "dataset": "d", "mode": "linear", "metric": metric, "value": value,
                     "predictions": str(path)})
    return pd.DataFrame(rows)


def test_compare_to_best_holm_corrects_and_flags_not_worse(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, 500)

    def model(accuracy):
        return np.where(rng.random(500) < accuracy, labels, (labels + 1) % 5)

    table = write_models(tmp_path, labels, {"best": model(0.9), "close": model(0.89), "poor": model(0.6)})
    out = paired_tests.compare_to_best(table).set_index("model")
    assert out.loc["best", "not_worse"] and out.loc["best", "best_model"] == "best"
    raw = sorted(out["p"].dropna())
    expected_holm = [min(1, 2 * raw[0]), min(1, max(2 * raw[0], raw[1]))]  # Holm by hand for two comparisons
    assert sorted(out["p_holm"].dropna()) == pytest.approx(expected_holm)
    assert out.loc["close", "not_worse"] and not out.loc["poor", "not_worse"]


def test_predictions_on_other_examples_are_refused(tmp_path):
    labels = np.arange(10) % 5
    table = write_models(tmp_path, labels, {"a": labels.copy(), "b": labels.copy()})
    save_predictions(tmp_path / "b.npz", labels[::-1], np.eye(5)[labels])
    with pytest.raises(ValueError, match="not on the same test examples"):
        paired_tests.compare_to_best(table)


def test_map_permutation_uses_rankings(tmp_path):
    rng = np.random.default_rng(3)
    labels = (rng.random((200, 4)) < 0.3).astype(int)
    informative = labels + rng.normal(0, 0.3, labels.shape)
    p_same = paired_tests.permutation_p("map_11point", labels, informative, 100 * informative, n_perm=100)
    assert p_same == 1.0  # the same ranking on another scale is the same model
