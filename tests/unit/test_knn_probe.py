import json
import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from transferbench import metrics
from transferbench.probe.knn import _unit_rows, fit_knn_probe, knn_scores, nearest_neighbours

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")


def clusters(n, classes=3, dim=8, spread=1.5, seed=0):
    """Gaussian clusters: continuous features, so no two similarities are equal."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 2
    labels = rng.integers(0, classes, n)
    return (centers[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32), labels


def brute_force_neighbours(bank, queries, k):
    """Indices of the k most cosine-similar bank rows (float64), ties to the lower index."""
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    similarities = unit(queries.astype(np.float64)) @ unit(bank.astype(np.float64)).T
    return np.argsort(-similarities, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("k", [1, 5, 15])
def test_uniform_vote_predicts_like_sklearn_cosine_knn_and_breaks_vote_ties_to_the_lower_class(k):
    X, y = clusters(300)
    train, test = slice(0, 200), slice(200, 300)
    reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(X[train], y[train])
    _, indices = nearest_neighbours(_unit_rows(X[test], CPU), _unit_rows(X[train], CPU), k)
    assert np.array_equal(indices.numpy(), reference.kneighbors(X[test], return_distance=False))

    scores = knn_scores(X[train], y[train], X[test], k, vote="uniform", device="cpu")
    ordered = np.sort(scores, axis=1)
    tied = ordered[:, -1] == ordered[:, -2]
    assert tied.mean() <= 0.1
    ours = scores.argmax(1)
    assert np.array_equal(ours[~tied], reference.predict(X[test])[~tied])
    # a vote tie goes to the lowest tied class
    for row in np.flatnonzero(tied):
        assert ours[row] == np.flatnonzero(scores[row] == scores[row].max())[0]


def test_exponential_vote_weights_neighbours_by_exp_similarity_over_temperature():
    # query along x; bank at cosines 1, 0.8, 0.6, 0 (scaled: only directions count)
    bank = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32) * [[3], [0.5], [2], [7]]
    bank_labels = np.array([0, 1, 1, 0])
    query = np.array([[2.0, 0.0]], dtype=np.float32)
    weighted = knn_scores(bank, bank_labels, query, k=3, vote="exp", temperature=0.1, device="cpu")[0]
    total = math.exp(10) + math.exp(8) + math.exp(6)
    assert weighted == pytest.approx([math.exp(10) / total, (math.exp(8) + math.exp(6)) / total], rel=1e-5)
    assert weighted.argmax() == 0  # the nearest neighbour outweighs two farther ones...
    uniform = knn_scores(bank, bank_labels, query, k=3, vote="uniform", device="cpu")[0]
    assert uniform == pytest.approx([1 / 3, 2 / 3])  # ...which a majority vote follows


@pytest.mark.parametrize("queries_per_block, bank_rows_per_block", [(1, 1), (7, 10), (41, 5), (1000, 3)])
def test_block_sizes_do_not_change_neighbours_or_scores(queries_per_block, bank_rows_per_block):
    X, y = clusters(138, seed=1)
    bank, queries = X[:97], X[97:]
    reference = nearest_neighbours(_unit_rows(queries, CPU), _unit_rows(bank, CPU), 20)
    blocked = nearest_neighbours(_unit_rows(queries, CPU), _unit_rows(bank, CPU), 20, queries_per_block,
                                 bank_rows_per_block)
    assert torch.equal(blocked[1], reference[1])
    assert torch.allclose(blocked[0], reference[0], atol=1e-6)
    splits = (X[:60], y[:60]), (X[60:97], y[60:97]), (X[97:], y[97:])
    whole = fit_knn_probe(*splits, "top1", ks=[1, 5, 20], device="cpu")
    parts = fit_knn_probe(*splits, "top1", ks=[1, 5, 20], device="cpu", queries_per_block=queries_per_block,
                          bank_rows_per_block=bank_rows_per_block)
    assert parts["selection"]["val_metric"] == whole["selection"]["val_metric"]
    assert parts["value"] == whole["value"]
    np.testing.assert_allclose(parts["test_scores"], whole["test_scores"], atol=1e-5)


@pytest.mark.parametrize("bank_rows_per_block", [1, 4, 5, 9, 100])
def test_equal_similarities_go_to_the_lower_bank_index(bank_rows_per_block):
    rng = np.random.default_rng(2)
    bank = rng.normal(size=(20, 6)).astype(np.float32)
    bank[:, 0] = np.abs(bank[:, 0])  # farther than the duplicates: cosine to e0 < 1
    duplicates = [3, 8, 12, 13]  # exact copies of e0 (similarity exactly 1), across block boundaries and within
    bank[duplicates] = np.eye(6, dtype=np.float32)[0] * np.array([[1], [4], [0.5], [2]], dtype=np.float32)
    query = _unit_rows(np.eye(6, dtype=np.float32)[:1] * 3, CPU)
    for k, expected in [(1, [3]), (2, [3, 8]), (3, [3, 8, 12]), (4, duplicates)]:
        similarities, indices = nearest_neighbours(query, _unit_rows(bank, CPU), k,
                                                   bank_rows_per_block=bank_rows_per_block)
        assert indices[0].tolist() == expected
        assert similarities[0].tolist() == [1.0] * k
    _, indices = nearest_neighbours(query, _unit_rows(bank, CPU), 6, bank_rows_per_block=bank_rows_per_block)
    assert indices[0, :4].tolist() == duplicates


def test_k_is_chosen_by_validation_score_recorded_per_k():
    X, y = clusters(400, classes=4, spread=3.0, seed=3)
    train, val, test = (X[:200], y[:200]), (X[200:300], y[200:300]), (X[300:], y[300:])
    result = fit_knn_probe(train, val, test, "mean_per_class", ks=[20, 1, 5, 10], device="cpu")
    selection = result["selection"]
    assert selection["ks"] == [1, 5, 10, 20]
    for k, recorded in zip(selection["ks"], selection["val_metric"]):
        scores = knn_scores(*train, val[0], k, device="cpu")
        assert recorded == metrics.mean_per_class(val[1], scores.argmax(1))
    best = max(selection["val_metric"])
    assert result["chosen_k"] == max(k for k, v in zip(selection["ks"], selection["val_metric"]) if v == best)


def test_k_selection_prefers_the_smallest_k_when_it_alone_is_best():
    # classes alternate along a circle: the nearest neighbour is right, the three nearest mostly wrong
    angles = np.arange(200) * 0.01
    circle = np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)
    labels = np.arange(200) % 2
    train, val = (circle, labels), (circle[1:-1] * 1.5, labels[1:-1])
    result = fit_knn_probe(train, val, val, "top1", ks=[1, 3], vote="uniform", device="cpu")
    assert result["selection"]["val_metric"] == [1.0, 0.0]
    assert result["chosen_k"] == 1


def test_k_selection_ties_prefer_the_larger_k():
    X, y = clusters(300, classes=3, spread=0.05, seed=4)  # tight clusters: every k classifies val perfectly
    result = fit_knn_probe((X[:100], y[:100]), (X[100:200], y[100:200]), (X[200:], y[200:]), "top1",
                           ks=[1, 5, 10], device="cpu")
    assert result["selection"]["val_metric"] == [1.0, 1.0, 1.0]
    assert result["chosen_k"] == 10


def test_multilabel_scores_are_the_weighted_fraction_of_positive_neighbours_ranked_by_map():
    rng = np.random.default_rng(5)
    prototypes = rng.normal(size=(4, 16))
    labels = (rng.random((300, 4)) < 0.35).astype(np.int64)
    labels[labels.sum(1) == 0, 0] = 1
    X = (labels @ prototypes + 0.5 * rng.normal(size=(300, 16))).astype(np.float32)
    train, val, test = (X[:150], labels[:150]), (X[150:200], labels[150:200]), (X[200:], labels[200:])
    result = fit_knn_probe(train, val, test, "map_11point", ks=[5], vote="uniform", device="cpu")
    neighbours = brute_force_neighbours(X[:200], X[200:], 5)
    expected = labels[:200][neighbours].mean(axis=1)
    np.testing.assert_allclose(result["test_scores"], expected, atol=1e-6)
    assert result["value"] == pytest.approx(metrics.mean_ap_11point(labels[200:], expected))
    assert result["value"] > 0.8
    weighted = fit_knn_probe(train, val, test, "map_11point", ks=[1, 5, 20], device="cpu")
    assert weighted["test_scores"].shape == (100, 4)
    assert ((weighted["test_scores"] >= 0) & (weighted["test_scores"] <= 1 + 1e-6)).all()


def test_result_has_the_linear_probe_layout_and_is_json_ready_without_the_scores():
    X, y = clusters(150, seed=6)
    result = fit_knn_probe((X[:80], y[:80]), (X[80:110], y[80:110]), (X[110:], y[110:]), "top1", device="cpu")
    scores = result.pop("test_scores")
    assert scores.shape == (40, 3) and scores.dtype == np.float32
    assert result["value"] == metrics.top1(y[110:], scores.argmax(1))
    assert result["selection"]["ks"] == [1, 5, 10, 20, 50] and result["selection"]["ks_dropped"] == [100]
    assert result["n_train"] == 110 and result["n_test"] == 40 and result["feature_dim"] == 8
    assert result["mode"] == "knn" and result["vote"] == "exp" and result["temperature"] == 0.07
    json.dumps(result, allow_nan=False)


def small_splits(n_train=5):
    X, y = clusters(n_train + 20, seed=7)
    return (X[:n_train], y[:n_train]), (X[n_train:n_train + 10], y[n_train:n_train + 10]), (X[-10:], y[-10:])


def test_fixed_k_larger_than_the_bank_is_an_error_naming_both():
    with pytest.raises(ValueError, match="k = 10 is larger than the neighbour bank: train has 5 examples"):
        fit_knn_probe(*small_splits(5), "top1", ks=10, device="cpu")
    result = fit_knn_probe(*small_splits(5), "top1", ks=[1, 3, 10], device="cpu")
    assert result["selection"]["ks"] == [1, 3] and result["selection"]["ks_dropped"] == [10]


def test_bad_inputs_are_errors_naming_what_is_wrong():
    train, val, test = small_splits()
    with pytest.raises(ValueError, match="train is empty"):
        fit_knn_probe((train[0][:0], train[1][:0]), val, test, "top1", device="cpu")
    nan_val = val[0].copy()
    nan_val[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"val features contain NaN or inf \(first at row 2, column 3\)"):
        fit_knn_probe(train, (nan_val, val[1]), test, "top1", device="cpu")
    zero_test = test[0].copy()
    zero_test[4] = 0
    with pytest.raises(ValueError, match="test features: row 4 is all zeros"):
        fit_knn_probe(train, val, (zero_test, test[1]), "top1", device="cpu")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fit_knn_probe(train, val, test, "top1", ks=[0, 1], device="cpu")
    with pytest.raises(ValueError, match="does not fit single-label data"):
        fit_knn_probe(train, val, test, "map_11point", device="cpu")
    with pytest.raises(ValueError, match="unknown vote"):
        fit_knn_probe(train, val, test, "top1", vote="cosine", device="cpu")
    with pytest.raises(ValueError, match="val features have 7 dimensions, train's 8"):
        fit_knn_probe(train, (val[0][:, :7], val[1]), test, "top1", device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_finds_the_same_neighbours_as_cpu():
    X, y = clusters(3000, classes=10, dim=64, seed=8)
    splits = (X[:2000], y[:2000]), (X[2000:2500], y[2000:2500]), (X[2500:], y[2500:])
    cpu = fit_knn_probe(*splits, "top1", device="cpu", queries_per_block=128, bank_rows_per_block=300)
    gpu = fit_knn_probe(*splits, "top1", device="cuda", queries_per_block=128, bank_rows_per_block=300)
    assert gpu["chosen_k"] == cpu["chosen_k"]
    assert abs(gpu["value"] - cpu["value"]) <= 2 / 500
    np.testing.assert_allclose(gpu["test_scores"], cpu["test_scores"], atol=1e-3)
