import h5py
import numpy as np
import pandas as pd
import pytest

from transferbench.analysis.feature_space import (
    class_separation,
    feature_space_table,
    mean_cosine_distances,
    tsne_embedding,
    variance_ratio,
)
from transferbench.analysis.feature_space_figures import plot_class_separation, plot_tsne

pytestmark = pytest.mark.unit


def labelled_features(sizes=(5, 12, 9, 20), ids=(3, 7, 11, 20), dim=6, shift=1.0, seed=0):
    """Unequal classes with non-contiguous ids; each class a Gaussian around its own mean."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(ids, sizes)
    means = shift * rng.normal(size=(len(ids), dim)) + 0.5
    codes = np.repeat(np.arange(len(ids)), sizes)
    features = means[codes] + rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return features[order].astype(np.float32), labels[order]


def pairwise_distances(features, labels):
    """The paper's d_within and d_total from the full n x n matrix of cosine distances."""
    unit = features.astype(np.float64) / np.linalg.norm(features.astype(np.float64), axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    classes = np.unique(labels)
    K = len(classes)
    members = [labels == c for c in classes]
    within = sum(distance[np.ix_(m, m)].sum() / (K * m.sum() ** 2) for m in members)
    total = sum(distance[np.ix_(a, b)].sum() / (K ** 2 * a.sum() * b.sum()) for a in members for b in members)
    return within, total


@pytest.mark.parametrize("block_rows", [1, 7, 8192])
def test_linear_time_distances_equal_the_pairwise_sums_with_self_pairs_and_balanced_classes(block_rows):
    features, labels = labelled_features()
    within, total = pairwise_distances(features, labels)
    ours = mean_cosine_distances(features, labels, block_rows=block_rows)
    assert ours == pytest.approx((within, total), rel=1e-10)
    assert class_separation(features, labels, block_rows=block_rows) == pytest.approx(1 - within / total, rel=1e-9)


def test_classes_along_orthogonal_directions_are_perfectly_separated():
    rng = np.random.default_rng(1)
    K = 5
    labels = rng.permutation(np.repeat(np.arange(K), [3, 8, 4, 10, 6]))
    features = np.eye(8)[labels] * rng.uniform(0.1, 10, size=(len(labels), 1))  # class k along e_k, any length
    within, total = mean_cosine_distances(features, labels)
    assert within == pytest.approx(0, abs=1e-12)
    assert total == pytest.approx(1 - 1 / K)  # between different unit axes the distance is 1
    assert class_separation(features, labels) == pytest.approx(1.0, abs=1e-12)


def test_classes_drawn_from_one_distribution_are_not_separated():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(4000, 32)) + 0.3
    labels = rng.integers(0, 4, 4000)
    separation = class_separation(features, labels)
    assert 0 <= separation < 0.01  # never negative (self-pairs, convexity); about 1 / N_k from them


def test_separation_ignores_the_length_of_each_feature_vector():
    features, labels = labelled_features(seed=3)
    scales = np.random.default_rng(3).uniform(0.01, 100, size=(len(labels), 1))
    assert class_separation(features * scales, labels) == pytest.approx(class_separation(features, labels), rel=1e-10)


def test_variance_ratio_is_between_over_total_sum_of_squares_and_the_separation_on_unit_balanced_data():
    features, labels = labelled_features(shift=2.0, seed=4)
    x = features.astype(np.float64)
    mean = x.mean(0)
    between = sum((labels == c).sum() * np.sum((x[labels == c].mean(0) - mean) ** 2) for c in np.unique(labels))
    assert variance_ratio(features, labels, block_rows=5) == pytest.approx(between / np.sum((x - mean) ** 2))
    balanced, balanced_labels = labelled_features(sizes=(10, 10, 10, 10), seed=5)
    unit = balanced / np.linalg.norm(balanced, axis=1, keepdims=True)
    assert variance_ratio(unit, balanced_labels) == pytest.approx(class_separation(balanced, balanced_labels))


def test_variance_ratio_does_not_lose_a_large_common_mean_to_cancellation():
    features, labels = labelled_features(shift=2.0, seed=6)
    offset = variance_ratio(features.astype(np.float64) + 1e7, labels)
    assert offset == pytest.approx(variance_ratio(features, labels), rel=1e-6)


def test_bad_inputs_are_errors_naming_what_is_wrong():
    features, labels = labelled_features()
    zero = features.copy()
    zero[3] = 0
    with pytest.raises(ValueError, match="row 3 is all zeros"):
        class_separation(zero, labels)
    nan = features.copy()
    nan[9, 1] = np.nan
    with pytest.raises(ValueError, match="row 9 contains NaN"):
        class_separation(nan, labels)
    with pytest.raises(ValueError, match="at least two classes"):
        class_separation(features, np.zeros(len(labels), dtype=int))
    with pytest.raises(ValueError, match="multi-label data has no class separation"):
        class_separation(features, np.zeros((len(labels), 3), dtype=int))
    with pytest.raises(ValueError, match="same direction"):
        class_separation(np.ones((6, 3)), [0, 0, 1, 1, 2, 2])


def test_tsne_is_deterministic_for_a_seed_and_draws_the_stated_classes_and_examples():
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(15), 12)
    features = rng.normal(size=(15, 8))[labels] + 0.3 * rng.normal(size=(len(labels), 8))
    first = tsne_embedding(features, labels, classes=10, seed=3, max_per_class=8)
    again = tsne_embedding(features, labels, classes=10, seed=3, max_per_class=8)
    assert np.array_equal(first.coords, again.coords) and np.array_equal(first.indices, again.indices)
    assert first.coords.shape == (80, 2)
    stated = np.sort(np.random.default_rng(3).choice(np.arange(15), size=10, replace=False))
    assert np.array_equal(np.unique(first.labels), stated)
    assert np.array_equal(first.labels, labels[first.indices]) and (np.diff(first.indices) > 0).all()
    assert (np.bincount(first.labels)[stated] == 8).all()
    other = tsne_embedding(features, labels, classes=10, seed=4, max_per_class=8)
    assert not np.array_equal(other.indices, first.indices)
    chosen = tsne_embedding(features, labels, classes=[14, 2], seed=3, max_per_class=20)
    assert np.array_equal(np.unique(chosen.labels), [2, 14]) and len(chosen.indices) == 24
    with pytest.raises(ValueError, match="classes = 16"):
        tsne_embedding(features, labels, classes=16)


def write_features_file(path, features, labels, complete=True):
    """A features file in the cached layout (transferbench.features.store), the same rows in every split."""
    with h5py.File(path, "w") as h5:
        for name in ("train", "val", "test"):
            h5.create_group(name).create_dataset("features", data=features)
            h5[name].create_dataset("labels", data=labels)
        h5.attrs["complete"] = complete


def test_feature_space_table_measures_each_file_block_by_block_and_notes_multilabel(tmp_path):
    features, labels = labelled_features()
    write_features_file(tmp_path / "a.h5", features, labels)
    write_features_file(tmp_path / "voc.h5", features, np.eye(4, dtype=np.int64)[np.arange(len(labels)) % 4])
    table = feature_space_table({("m", "a"): tmp_path / "a.h5", ("m", "voc"): tmp_path / "voc.h5"}).set_index("dataset")
    assert table.loc["a", "class_separation"] == pytest.approx(class_separation(features, labels))
    assert table.loc["a", "variance_ratio"] == pytest.approx(variance_ratio(features, labels))
    assert table.loc["a", "n"] == len(labels) and table.loc["a", "split"] == "train"
    assert np.isnan(table.loc["voc", "class_separation"]) and "multi-label" in table.loc["voc", "note"]
    write_features_file(tmp_path / "half.h5", features, labels, complete=False)
    with pytest.raises(ValueError, match="half.h5.*no completion mark"):
        feature_space_table({("m", "a"): tmp_path / "half.h5"})


def test_feature_space_figures_render(tmp_path):
    space = pd.DataFrame({"model": ["a", "b", "c"], "dataset": "d", "class_separation": [0.3, 0.2, 0.1]})
    table = pd.DataFrame({"model": ["a", "b", "c"], "dataset": "d", "mode": "linear", "value": [0.6, 0.7, 0.8],
                          "imagenet_top1": [60.0, 70.0, 80.0]})
    plot_class_separation(space, table, tmp_path / "s.pdf", tmp_path / "s.png")
    tagged = table.assign(architecture="w8", setting=[1.0, 2.0, 3.0])  # as read back from the results CSV
    plot_class_separation(space, tagged, tmp_path / "a.pdf", tmp_path / "a.png",
                          ablation={"group_tag": "architecture", "setting_tag": "setting", "order": [1, 2, 3]})
    assert (tmp_path / "a.png").stat().st_size > (tmp_path / "s.png").stat().st_size  # the third panel
    features, labels = labelled_features()
    embedding = tsne_embedding(features, labels, classes=3, seed=0)
    plot_tsne({"a": embedding, "b": embedding}, tmp_path / "t.pdf", tmp_path / "t.png",
              class_names={3: "three", 7: "seven", 11: "eleven", 20: "twenty"})
    for name in ("s.pdf", "s.png", "t.pdf", "t.png"):
        assert (tmp_path / name).stat().st_size > 1000
