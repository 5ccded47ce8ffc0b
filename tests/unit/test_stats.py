import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from transferbench.analysis import __main__ as cli
from transferbench.analysis import stats

pytestmark = pytest.mark.unit


def table_from(top1, values, datasets, n_train=None, mode="linear"):
    rows = []
    for m, (t1, per_dataset) in enumerate(zip(top1, values)):
        for j, (d, v) in enumerate(zip(datasets, per_dataset)):
            rows.append({"model": f"m{m}", "dataset": d, "mode": mode, "metric": "top1", "value": v,
                         "imagenet_top1": t1, "n_train": (n_train or [1000] * len(datasets))[j], "n_test": 100})
    return pd.DataFrame(rows)


def test_logit_clips_with_stated_epsilon():
    assert stats.logit(0.5) == 0
    assert stats.logit(1.0) == pytest.approx(np.log((1 - 1e-4) / 1e-4))
    assert np.isfinite(stats.logit([0.0, 1.0])).all()


def test_headline_r_equals_scipy_on_mean_log_odds():
    rng = np.random.default_rng(0)
    top1 = rng.uniform(70, 80, 8)
    values = rng.uniform(0.5, 0.95, (8, 3))
    table = table_from(top1, values, ["a", "b", "c"])
    row = stats.correlations(table, n_boot=500).query("subset == 'all'").iloc[0]
    expected = st.pearsonr(top1, np.log(values / (1 - values)).mean(axis=1))[0]
    assert row["r"] == pytest.approx(expected)
    assert row["ci_low"] <= row["r"] <= row["ci_high"]
    assert (row["n_models"], row["n_datasets"]) == (8, 3)


def test_planted_correlation_is_recovered_within_interval():
    rng = np.random.default_rng(1)
    n_models, true_r = 40, 0.8
    top1 = rng.normal(75, 3, n_models)
    z = (top1 - top1.mean()) / top1.std()
    latent = true_r * z + np.sqrt(1 - true_r ** 2) * rng.normal(size=n_models)
    values = 1 / (1 + np.exp(-(latent[:, None] + rng.normal(0, 0.01, (n_models, 2)))))
    row = stats.correlations(table_from(top1, values, ["a", "b"]), n_boot=2000).query("subset == 'all'").iloc[0]
    assert row["ci_low"] <= true_r <= row["ci_high"]
    assert row["ci_high"] - row["ci_low"] < 0.4


def test_small_and_large_dataset_subsets_follow_the_10k_rule():
    rng = np.random.default_rng(2)
    table = table_from(rng.uniform(70, 80, 5), rng.uniform(0.5, 0.9, (5, 3)), ["s", "l1", "l2"],
                       n_train=[5000, 10000, 50000])
    subsets = stats.correlations(table, n_boot=100).set_index("subset")
    assert subsets.loc["n_train<10000", "n_datasets"] == 1
    assert subsets.loc["n_train>=10000", "n_datasets"] == 2


def test_morey_intervals_match_hand_computation():
    values = np.array([[0.6, 0.7, 0.8], [0.65, 0.72, 0.9], [0.5, 0.75, 0.85]])
    table = table_from([70, 75, 80], values, ["a", "b", "c"])
    y = np.log(values / (1 - values))
    normalized = y - y.mean(axis=0) + y.mean()
    n_models, n_datasets = y.shape
    expected = (normalized.std(axis=1, ddof=1) / np.sqrt(n_datasets) * np.sqrt(n_models / (n_models - 1))
                * st.t.ppf(0.975, n_datasets - 1))
    np.testing.assert_allclose(stats.morey_intervals(table).to_numpy(), expected)


def test_stats_command_writes_correlations_csv(tmp_path):
    rng = np.random.default_rng(3)
    table = table_from(rng.uniform(70, 80, 6), rng.uniform(0.5, 0.9, (6, 2)), ["a", "b"])
    table.to_csv(tmp_path / "results.csv", index=False)
    cli.main(["--results", str(tmp_path / "results.csv"), "--out", str(tmp_path / "out"), "--n-boot", "100"])
    out = pd.read_csv(tmp_path / "out" / "correlations.csv")
    assert {"mode", "subset", "r", "ci_low", "ci_high", "n_models", "n_datasets"} <= set(out.columns)


def test_stats_command_writes_regressions_and_mode_comparison(tmp_path):
    rng = np.random.default_rng(4)
    top1 = rng.uniform(70, 80, 6)  # one upstream top-1 per model, in every mode
    table = pd.concat([table_from(top1, rng.uniform(0.5, 0.9, (6, 2)), ["a", "b"], mode=m)
                       for m in ("linear", "finetune")])
    table.to_csv(tmp_path / "results.csv", index=False)
    cli.main(["--results", str(tmp_path / "results.csv"), "--out", str(tmp_path / "out"), "--n-boot", "100"])
    regressions = pd.read_csv(tmp_path / "out" / "regressions.csv")
    assert set(zip(regressions["mode"], regressions["model"])) == {
        (m, k) for m in ("linear", "finetune") for k in ("ols", "glm_binomial")}
    assert "Generalized Linear Model Regression Results" in (tmp_path / "out" / "regressions.txt").read_text()
    assert len(pd.read_csv(tmp_path / "out" / "mode_comparison.csv")) == 1
    assert not (tmp_path / "out" / "paired_tests.csv").exists()  # no predictions column: skipped, said in the log


def test_mode_comparison_counts_wins_and_ties_by_hand():
    rows = [("m0", "a", "linear", 0.5), ("m0", "a", "finetune", 0.6), ("m1", "a", "linear", 0.7),
            ("m1", "a", "finetune", 0.7), ("m2", "a", "linear", 0.9), ("m2", "a", "finetune", 0.8),
            ("m3", "a", "linear", 0.4)]  # m3 has no finetune result: not a pair
    table = pd.DataFrame(rows, columns=["model", "dataset", "mode", "value"])
    row = stats.mode_comparison(table).iloc[0]
    assert (row["mode_a"], row["mode_b"], row["a_wins"], row["b_wins"], row["ties"], row["pairs"]) == \
        ("finetune", "linear", 1, 1, 1, 3)
