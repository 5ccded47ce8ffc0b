"""The regularizer ablation's statistics (transferbench.analysis.ablation): means per setting and the paired test
of each step, against hand computations and scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from transferbench.analysis.ablation import setting_means, step_tests
from transferbench.analysis.ablation_figures import plot_regularizers
from transferbench.analysis.stats import logit

pytestmark = pytest.mark.unit
ORDER = ["C1", "C2", "C3"]


def ablation_table():
    rng = np.random.default_rng(0)
    rows = []
    for arch in ("a", "b"):
        for i, setting in enumerate(ORDER):
            for dataset in ("d1", "d2", "d3", "d4"):
                value = float(np.clip(0.5 + 0.05 * i + rng.normal(0, 0.03), 0.01, 0.99))
                rows.append({"model": f"{arch}_{setting}", "dataset": dataset, "mode": "linear", "value": value,
                             "imagenet_top1": 70.0 + i, "architecture": arch, "setting": setting})
    rows.append({"model": "other", "dataset": "d1", "mode": "linear", "value": 0.5, "imagenet_top1": 60.0,
                 "architecture": np.nan, "setting": np.nan})  # an untagged model is left out
    return pd.DataFrame(rows)


def test_setting_means_are_mean_log_odds_in_the_configured_order():
    table = ablation_table()
    means = setting_means(table, "architecture", "setting", ORDER)
    assert len(means) == 2 * 3 and list(means[means.architecture == "a"]["setting"]) == ORDER
    a_c2 = table[(table.model == "a_C2")]
    assert means.set_index(["architecture", "setting"]).loc[("a", "C2"), "mean_log_odds"] == pytest.approx(
        logit(a_c2["value"]).mean())


def test_each_step_is_a_paired_t_test_over_datasets():
    table = ablation_table()
    steps = step_tests(table, "architecture", "setting", ORDER)
    assert len(steps) == 2 * 2 and list(steps[steps.architecture == "a"]["from"]) == ["C1", "C2"]
    row = steps[(steps.architecture == "b") & (steps["from"] == "C2")].iloc[0]
    before = logit(table[table.model == "b_C2"].sort_values("dataset")["value"].to_numpy())
    after = logit(table[table.model == "b_C3"].sort_values("dataset")["value"].to_numpy())
    expected = stats.ttest_rel(after, before)
    diff = after - before
    assert row["mean_difference"] == pytest.approx(diff.mean()) and row["p"] == pytest.approx(expected.pvalue)
    assert row["cohens_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert row["ci_low"] < row["mean_difference"] < row["ci_high"] and row["n_datasets"] == 4


def test_one_dataset_gives_no_test_and_says_why_and_missing_tags_are_named(tmp_path):
    table = ablation_table()
    steps = step_tests(table[table.dataset == "d1"], "architecture", "setting", ORDER)
    assert steps["p"].isna().all() and steps["note"].str.contains("at least 2 datasets").all()
    with pytest.raises(ValueError, match="no column 'recipe'"):
        step_tests(table, "architecture", "recipe", ORDER)
    plot_regularizers(setting_means(table, "architecture", "setting", ORDER),
                      step_tests(table, "architecture", "setting", ORDER), "architecture", "setting", ORDER,
                      tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_numeric_settings_survive_the_tables_csv_round_trip(tmp_path):
    table = ablation_table().replace({"setting": {"C1": 1, "C2": 2, "C3": 3}})
    table.to_csv(tmp_path / "t.csv", index=False)
    read_back = pd.read_csv(tmp_path / "t.csv")  # the untagged row turns the column to floats: 1.0, 2.0, 3.0
    assert read_back["setting"].dtype == float
    steps = step_tests(read_back, "architecture", "setting", [1, 2, 3])
    assert list(steps["from"]) == ["1", "2", "1", "2"] and steps["p"].notna().all()
    means = setting_means(read_back, "architecture", "setting", [1, 2, 3])
    means.to_csv(tmp_path / "m.csv", index=False)
    steps.to_csv(tmp_path / "s.csv", index=False)
    plot_regularizers(pd.read_csv(tmp_path / "m.csv"), pd.read_csv(tmp_path / "s.csv"), "architecture", "setting",
                      [1, 2, 3], tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000
