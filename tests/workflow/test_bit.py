"""The BiT-HyperRule demo (config/demo_bit.yaml) end to end at a tiny size, through --configfile as the README runs
it: the bit mode's runs and median, its rows in the results table, and the comparison with the grid search.
(Snakemake resolves --configfile against the directory it starts in, not -d: hence absolute paths.)"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import ROOT, planned_jobs, run_with_configfile

pytestmark = pytest.mark.workflow
DEMO = ROOT / "config" / "demo_bit.yaml"


def tiny_bit_config() -> dict:
    """config/demo_bit.yaml at test size: a smaller upstream task, 16 px models, the rule scaled to 10 steps and
    20 / 16 px images, the grid search's two points at 4 steps."""
    config = yaml.safe_load(DEMO.read_text())
    config["upstream"]["dataset"].update(classes=8, train_per_class=12, test_per_class=6, size=16)
    config["upstream"]["train"].update(steps=8, batch_size=16)
    for entry in config["models"].values():
        entry["resolution"] = 16
    config["datasets"]["digits"].update(test_fraction=0.5, val_fraction=0.3)
    config["finetune"].update(steps=4, batch_size=16, checkpoint_every=2)
    config["bit"].update(batch_size=16, schedule_scale=0.02, image_scale=0.125, checkpoint_every=4)
    return config


@pytest.fixture(scope="module")
def bit_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bit")
    return workdir, run_with_configfile(workdir, tiny_bit_config(), "demo_bit.yaml", "--cores", "2")


def test_startup_states_the_rule_and_its_scaling(bit_run):
    _, proc = bit_run
    assert "bit: BiT-HyperRule (code version), 3 runs per model x dataset (median reported), 3 models, batch 16; " \
           "scaled for a demo: steps x 0.02, images x 0.125" in proc.stderr


def test_each_run_follows_the_rule_and_the_table_reports_the_median(bit_run):
    workdir, _ = bit_run
    split = json.loads((workdir / "results/splits/digits.json").read_text())
    runs = [json.loads((workdir / f"results/bit/cnn_w8_d2/digits/run{k}.json").read_text()) for k in range(3)]
    for run in runs:  # digits: fewer than 20,000 examples of 8 px: 500 steps, no MixUp, 160 / 128 px (scaled)
        assert run["n_train"] == split["sizes"]["train"] + split["sizes"]["val"] and run["eval_split"] == "test"
        assert run["rule"] == {"version": "code", "steps": 10, "warmup": 2, "decays": [4, 6, 8], "precrop": 20,
                               "crop": 16, "mixup_alpha": 0.0, "base_lr": 0.01, "batch_size": 16, "momentum": 0.9,
                               "weight_decay": 0.0}
        assert run["steps"] == 10 and run["image_side"] == 8
    assert len({r["seed"] for r in runs}) == 3
    assert (workdir / "results/images/digits/20px_bilinear.h5").is_file()  # the rule's pre-crop cache
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert sorted(table["mode"].unique()) == ["bit", "finetune"] and len(table) == 6
    bit = table[(table["mode"] == "bit") & (table["model"] == "cnn_w8_d2")].iloc[0]
    values = sorted(r["value"] for r in runs)
    assert bit["value"] == pytest.approx(values[1], abs=1e-6) and bit["runs"] == 3
    assert (bit["value_min"], bit["value_max"]) == pytest.approx((values[0], values[2]), abs=1e-6)
    median = json.loads((workdir / "results/bit/cnn_w8_d2/digits/final.json").read_text())
    with np.load(workdir / bit["predictions"]) as a, \
            np.load(workdir / f"results/bit/cnn_w8_d2/digits/run{median['median_run']}.predictions.npz") as b:
        assert np.array_equal(a["scores"], b["scores"])
    assert table[table["mode"] == "finetune"]["runs"].isna().all()
    assert "BiT-HyperRule" in (workdir / "results/tables/results.tex").read_text()


def test_the_comparison_with_the_grid_search(bit_run):
    workdir, _ = bit_run
    comparison = pd.read_csv(workdir / "results/stats/bit_vs_grid.csv")
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert len(comparison) == 3 and (comparison["grid_points"] == 2).all()
    row = comparison[comparison["model"] == "cnn_w4_d1"].iloc[0]
    grid = [json.loads(p.read_text()) for p in (workdir / "results/finetune/cnn_w4_d1/digits/grid").glob("*.json")]
    final = json.loads((workdir / "results/finetune/cnn_w4_d1/digits/final.json").read_text())
    assert row["grid_train_s"] == pytest.approx(sum(g["wall_time_s"] for g in grid) + final["wall_time_s"], rel=1e-5)
    bit = json.loads((workdir / "results/bit/cnn_w4_d1/digits/final.json").read_text())
    assert row["bit_train_s"] == pytest.approx(bit["wall_time_s"], rel=1e-5)
    assert row["time_ratio"] == pytest.approx(row["grid_train_s"] / row["bit_train_s"], rel=1e-5)
    values = table[table["model"] == "cnn_w4_d1"].set_index("mode")["value"]
    log_odds = np.log(values / (1 - values))
    assert row["log_odds_difference"] == pytest.approx(log_odds["bit"] - log_odds["finetune"], abs=1e-4)
    r = pd.read_csv(workdir / "results/stats/bit_vs_grid_correlations.csv").set_index("protocol")
    assert sorted(r.index) == ["bit", "finetune"] and (r["n_models"] == 3).all()
    for ext in ("pdf", "png"):
        assert (workdir / f"results/figures/fig_bit_vs_grid.{ext}").stat().st_size > 1000


def test_a_dataset_of_unknown_image_side_is_a_config_error(tmp_path):
    config = tiny_bit_config()
    (tmp_path / "images" / "train" / "a").mkdir(parents=True)
    (tmp_path / "images" / "test" / "a").mkdir(parents=True)
    config["datasets"]["own"] = {"source": "imagefolder", "root": str(tmp_path / "images"), "metric": "top1"}
    proc = run_with_configfile(tmp_path, config, "demo_bit.yaml", "-n", check=False)
    assert proc.returncode != 0 and "config key 'datasets.own.image_side'" in proc.stdout + proc.stderr


def test_adding_a_seed_runs_only_the_new_runs_and_what_reads_them(bit_run, tmp_path):
    workdir = tmp_path / "grown"
    shutil.copytree(bit_run[0], workdir, symlinks=True)
    config = tiny_bit_config()
    config["bit"]["seeds"] = 4
    planned = planned_jobs(run_with_configfile(workdir, config, "demo_bit.yaml", "-n", "--cores", "2").stdout)
    runs = sorted((wc["model"], wc["dataset"], wc["run"]) for rule, wc in planned if rule == "train_bit")
    assert runs == [(m, "digits", "3") for m in ("cnn_w16_d3", "cnn_w4_d1", "cnn_w8_d2")]
    rules = {rule for rule, _ in planned}
    assert rules == {"train_bit", "pick_bit_median", "collect_results", "results_latex", "compute_statistics",
                     "compare_bit_to_grid", "fig_bit_vs_grid", "fig2_correlation", "fig_per_dataset",
                     "fig_modes_per_dataset", "fig_dataset_size", "all"}
