"""The reuse demo (config/demo_reuse.yaml) end to end at a tiny size: one run in a fresh copy of the checkout through
--configfile as the README runs a demo, feeding every assert (the heads' and partial fine-tuning's rows, the study's
statistics and figure); then a dry run after adding a head (only its jobs and the aggregates), and the demo's plan as
written. (Snakemake resolves --configfile against the directory it starts in, not -d: hence absolute paths.)"""

import json
import math
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import ROOT, copy_checkout, planned_jobs, run_with_configfile

pytestmark = pytest.mark.workflow
DEMO = ROOT / "config" / "demo_reuse.yaml"
CLASSES = 10  # digits
WIDTH = 64  # the demo's head width
# the demo CNNs' stage count (stem, then one per depth) and penultimate width (width x 2^depth)
STAGES = {"cnn_w4_d1": 2, "cnn_w8_d2": 3}
FEATURES = {"cnn_w4_d1": 8, "cnn_w8_d2": 32}


def tiny_reuse_config() -> dict:
    """config/demo_reuse.yaml at test size: two of its models (2 and 3 stages) at 16 px, a smaller upstream task, few
    steps; one head (1 hidden layer) on a one-point grid, and fine-tuning of the last stage only."""
    config = yaml.safe_load(DEMO.read_text())
    config["models"] = {name: config["models"][name] for name in STAGES}
    config["upstream"]["dataset"].update(classes=8, train_per_class=12, test_per_class=6, size=16)
    config["upstream"]["train"].update(steps=8, batch_size=16)
    for entry in config["models"].values():
        entry["resolution"] = 16
    config["datasets"]["digits"].update(test_fraction=0.5, val_fraction=0.3)
    config["linear"] = {"num": 5, "wd_min": 1.0e-2, "wd_max": 1.0e2}
    config["finetune"].update(steps=4, batch_size=16, checkpoint_every=2)
    reuse = config["sweeps"]["reuse"]
    reuse["heads"].update(hidden_layers=[1], steps=50, batch_size=32, grid={"lr": [0.01], "weight_decay": [1.0e-4]})
    reuse["trainable_stages"] = [1]
    return config


@pytest.fixture(scope="module")
def reuse_run(tmp_path_factory):
    workdir = copy_checkout(tmp_path_factory.mktemp("reuse"))
    proc = run_with_configfile(workdir, tiny_reuse_config(), "demo_reuse.yaml", "--cores", "2")
    return workdir, proc


def results(workdir) -> pd.DataFrame:
    return pd.read_csv(workdir / "results/tables/results.csv")


def test_startup_names_the_heads_and_the_trainable_stages(reuse_run):
    _, proc = reuse_run
    assert "sweep reuse: 4 runs (2 models, modes finetune, head; heads linear, mlp1-w64; fine-tuning the last 1 " \
           "stages or all)" in proc.stderr


def test_head_rows_count_the_heads_parameters(reuse_run):
    workdir, _ = reuse_run
    table = results(workdir)
    assert table["study"].value_counts().to_dict() == {"main": 4, "reuse": 4}
    heads = table[(table["study"] == "reuse") & (table["mode"] == "head")].set_index("model")
    assert sorted(heads.index) == sorted(STAGES) and (heads["head"] == f"mlp1-w{WIDTH}").all()
    for model, d in FEATURES.items():  # (d + 1) w + (w + 1) K
        assert heads.loc[model, "trainable_params"] == (d + 1) * WIDTH + (WIDTH + 1) * CLASSES
    assert heads["trainable_stages"].isna().all() and heads["value"].between(0, 1).all()
    split = json.loads((workdir / "results/splits/digits.json").read_text())
    probe = json.loads((workdir / f"results/reuse/head/cnn_w8_d2/digits/mlp1-w{WIDTH}.json").read_text())
    assert probe["n_train"] == split["sizes"]["train"] + split["sizes"]["val"] and probe["feature_dim"] == 32
    assert len(probe["path"]) == 1 and probe["chosen"] == {"lr": 0.01, "weight_decay": 1.0e-4}
    assert probe["steps"] == 50 and probe["value"] == pytest.approx(heads.loc["cnn_w8_d2", "value"], abs=1e-6)
    assert (workdir / f"results/reuse/head/cnn_w8_d2/digits/mlp1-w{WIDTH}.predictions.npz").is_file()


def test_main_linear_rows_are_the_linear_head(reuse_run):
    workdir, _ = reuse_run
    linear = results(workdir).query("study == 'main' and mode == 'linear'").set_index("model")
    assert (linear["head"] == "linear").all() and linear["trainable_stages"].isna().all()
    for model, d in FEATURES.items():
        assert linear.loc[model, "trainable_params"] == (d + 1) * CLASSES


def test_partial_finetune_rows_train_fewer_parameters_than_full_finetuning(reuse_run):
    workdir, _ = reuse_run
    table = results(workdir)
    partial = table.query("study == 'reuse' and mode == 'finetune'").set_index("model")
    full = table.query("study == 'main' and mode == 'finetune'").set_index("model")
    assert sorted(partial.index) == sorted(full.index) == sorted(STAGES)
    assert (partial["trainable_stages"] == 1).all() and full["trainable_stages"].isna().all()
    assert (partial["trainable_params"] < full["trainable_params"]).all()
    assert (partial["trainable_params"] > partial.index.map(lambda m: (FEATURES[m] + 1) * CLASSES)).all()
    assert (partial["steps"] == 4).all() and partial["value"].between(0, 1).all()
    final = json.loads((workdir / "results/reuse/finetune/cnn_w8_d2/digits/last1/final.json").read_text())
    assert final["trainable_stages"] == 1 and final["trainable_params"] == partial.loc["cnn_w8_d2", "trainable_params"]
    log = (workdir / "logs/train_final_in_sweep/reuse/finetune/cnn_w8_d2/digits/last1.log").read_text()
    assert re.search(r"the last 1 of 3 stages and the head train \([\d,]+ of [\d,]+ parameters\)", log), log[-2000:]


def test_reuse_statistics_and_figure(reuse_run):
    workdir, _ = reuse_run
    table = results(workdir)
    points = pd.read_csv(workdir / "results/stats/reuse_points.csv")
    assert len(points) == 2 * 4 and set(points["size_group"]) == {"<= 10,000"}
    summary = pd.read_csv(workdir / "results/stats/reuse_summary.csv")
    assert sorted(zip(summary["model"], summary["series"], summary["point"])) == sorted(
        (m, series, point) for m in STAGES
        for series, point in (("frozen + head", "linear"), ("frozen + head", f"mlp1-w{WIDTH}"),
                              ("fine-tuned", "last 1"), ("fine-tuned", "all")))
    assert (summary["datasets"] == 1).all()
    gains = pd.read_csv(workdir / "results/stats/reuse_gains.csv")
    assert sorted(set(gains["model"])) == sorted(STAGES) and (gains["dataset"] == "digits").all()
    assert sorted(set(gains["point"])) == ["last 1", f"mlp1-w{WIDTH}"]
    value = table.query("model == 'cnn_w4_d1' and study == 'main' and mode == 'linear'")["value"].iloc[0]
    head = gains.query(f"model == 'cnn_w4_d1' and point == 'mlp1-w{WIDTH}'").iloc[0]
    assert head["log_odds"] - head["minus_linear"] == pytest.approx(math.log(value / (1 - value)), abs=1e-4)
    for ext in ("pdf", "png"):
        assert (workdir / f"results/figures/fig_reuse_capacity.{ext}").stat().st_size > 1000
    main = pd.read_csv(workdir / "results/stats/correlations.csv")  # the main study's statistics: main rows only
    assert (main.query("subset == 'all'")["n_models"] == 2).all()


def test_adding_a_head_runs_only_its_jobs_and_the_aggregates(reuse_run, tmp_path):
    workdir = tmp_path / "grown"
    shutil.copytree(reuse_run[0], workdir, symlinks=True)
    config = tiny_reuse_config()
    config["sweeps"]["reuse"]["heads"]["hidden_layers"] = [1, 2]
    planned = planned_jobs(run_with_configfile(workdir, config, "demo_reuse.yaml", "-n", "--cores", "2").stdout)
    runs = sorted((rule, wc["model"], wc.get("variant")) for rule, wc in planned if wc)
    assert runs == [("fit_head_on_features", m, f"mlp2-w{WIDTH}") for m in sorted(STAGES)], runs
    aggregates = {rule for rule, wc in planned if not wc}
    assert {"collect_results", "compute_sweep_statistics", "fig_reuse_capacity", "all"} <= aggregates
    assert not aggregates & {"generate_dataset", "make_split", "cache_images"}


def test_the_demo_as_written_plans_every_head_and_trainable_stage(tmp_path):
    """`snakemake -n --configfile config/demo_reuse.yaml` from the root of a fresh copy, as a user types it."""
    clone = copy_checkout(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-q", "rules", "--configfile",
                           "config/demo_reuse.yaml"], cwd=clone, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    table = proc.stdout[proc.stdout.index("Job stats:"):]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}
    assert "study config/demo_reuse.yaml: 3 models x 1 datasets x 2 modes (linear, finetune) = 6 results, " \
           "46 jobs in all" in proc.stderr
    assert "sweep reuse: 12 runs (3 models, modes finetune, head; heads linear, mlp1-w64, mlp2-w64; fine-tuning " \
           "the last 1, 2 stages or all)" in proc.stderr
    # 3 models x 1 dataset: 2 heads and 2 partial runs each, beside the main study's linear probe and fine-tuning
    assert counts["fit_head_on_features"] == counts["train_final_in_sweep"] == 3 * 2
    assert counts["select_grid_point_in_sweep"] == 3 * 2 and "train_grid_point_in_sweep" not in counts
    assert counts["extract_features"] == counts["fit_linear_probe"] == counts["train_final"] == 3
    assert counts["pretrain_upstream"] == 3 and counts["compute_sweep_statistics"] == 1
    assert counts["fig_reuse_capacity"] == 1 and counts["total"] == 46
    assert [p.name for p in (clone / "results").iterdir()] == ["README.md"]  # nothing ran: the tracked README only
