"""The sweeps demo (config/demo_sweeps.yaml) end to end, at a tiny size: one run through --configfile as the README
runs it, feeding every assert; then a dry run after adding a size and a draw (only the new runs and the
aggregates). (Snakemake resolves --configfile against the directory it starts in, not -d: hence absolute paths.)"""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import ROOT, planned_jobs, run_with_configfile

pytestmark = pytest.mark.workflow
DEMO = ROOT / "config" / "demo_sweeps.yaml"
RETHINKING = ROOT / "config" / "demo_rethinking.yaml"


def tiny_sweeps_config() -> dict:
    """config/demo_sweeps.yaml at test size: a smaller upstream task, 16 px, few steps, 2 sizes; its dataset-size
    sweep keeps the linear and fine-tune modes (scratch runs in the budget sweep), fine-tuning with a grid of two
    points (selection on val); the budgets keep the demo's grids of one point (no grid job)."""
    config = yaml.safe_load(DEMO.read_text())
    config["upstream"]["dataset"].update(classes=8, train_per_class=12, test_per_class=6, size=16)
    config["upstream"]["train"].update(steps=8, batch_size=16)
    for entry in config["models"].values():
        entry["resolution"] = 16
    config["datasets"]["digits"].update(test_fraction=0.5, val_fraction=0.3)
    config["linear"] = {"num": 5, "wd_min": 1.0e-2, "wd_max": 1.0e2}
    for mode in ("finetune", "scratch"):
        config[mode].update(steps=4, batch_size=16, checkpoint_every=2)
    sweeps = config["sweeps"]
    sweeps["dataset_size"].update(modes=["linear", "finetune"], examples_per_class={"digits": [2, "all"]})
    sweeps["dataset_size"]["finetune"] = {"grid": {"lr": [0.03, 0.01], "weight_decay": [1.0e-5]}}  # chosen on val
    sweeps["budgets"]["steps"] = {"finetune": [2, 6], "scratch": [2, 6]}
    # config/demo_rethinking.yaml's schedule study, at test size, in the same run
    schedules = yaml.safe_load(RETHINKING.read_text())["sweeps"]["schedules"]
    sweeps["schedules"] = {**schedules, "models": ["cnn_w8_d2"], "datasets": ["digits"],
                           "multiples": {"finetune": [1, 2], "scratch": [1, 2]}, "norms": ["batchnorm", "groupnorm_ws"]}
    return config


@pytest.fixture(scope="module")
def sweeps_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweeps")
    proc = run_with_configfile(workdir, tiny_sweeps_config(), "demo_sweeps.yaml", "--cores", "2")
    return workdir, proc


def test_startup_names_the_sweeps(sweeps_run):
    _, proc = sweeps_run
    assert "sweep dataset_size: 18 runs (3 models, modes finetune, linear; examples per class digits: 2, all, " \
           "2 draws)" in proc.stderr
    assert "sweep budgets: 4 runs (1 models, modes finetune, scratch; finetune: 2, 6 steps; scratch: 2, 6 steps)" \
        in proc.stderr
    assert "sweep schedules: 6 runs (1 models, modes finetune, scratch; finetune: 1x, 2x; scratch: 1x, 2x; scratch " \
           "norms batchnorm, groupnorm_ws)" in proc.stderr


def test_results_table_has_a_row_per_sweep_run_with_its_axes(sweeps_run):
    workdir, _ = sweeps_run
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert {"study", "examples_per_class", "draw", "steps"} <= set(table.columns)
    assert table["study"].value_counts().to_dict() == {"main": 3, "dataset_size": 18, "budgets": 4, "schedules": 6}
    split = json.loads((workdir / "results/splits/digits.json").read_text())
    train_counts = np.bincount(split["labels"]["train"])
    sizes = table[table.study == "dataset_size"]
    two = sizes[sizes.examples_per_class == 2]
    assert (two["n_train"] == 2 * 10).all() and sorted(two["draw"].unique()) == [0, 1]
    everything = sizes[sizes.examples_per_class == train_counts.max()]
    assert len(everything) == 3 * 2 and (everything["n_train"] == len(split["ids"]["train"])).all()
    assert (everything["draw"] == 0).all()
    trained = sizes[sizes["mode"] == "finetune"]
    assert (trained["steps"] == 4).all() and sizes[sizes["mode"] == "linear"]["steps"].isna().all()
    budgets = table[table.study == "budgets"]
    assert sorted(zip(budgets["mode"], budgets["steps"])) == [("finetune", 2), ("finetune", 6), ("scratch", 2),
                                                               ("scratch", 6)]
    assert budgets["examples_per_class"].isna().all() and (budgets["n_train"] == split["n_train"]).all()
    assert table["value"].between(0, 1).all()


def test_subset_runs_reuse_the_cached_features_and_train_on_the_subset(sweeps_run):
    workdir, _ = sweeps_run
    assert sorted(p.name for p in (workdir / "results/features").rglob("*.h5")) == ["digits.h5"] * 3
    subset = json.loads((workdir / "results/subsets/digits/n2-d1.json").read_text())
    assert subset["n_train"] == 20 and subset["examples_per_class"] == 2 and subset["draw"] == 1
    probe = json.loads((workdir / "results/dataset_size/linear/cnn_w4_d1/digits/n2-d1.json").read_text())
    assert probe["n_train"] == 20 and probe["subset"] == "n2-d1"
    final = json.loads((workdir / "results/dataset_size/finetune/cnn_w8_d2/digits/n2-d0/final.json").read_text())
    assert final["n_train"] == 20 and final["eval_split"] == "test" and final["subset"] == "n2-d0"
    grid = sorted((workdir / "results/dataset_size/finetune/cnn_w8_d2/digits/n2-d0/grid").glob("*.json"))
    assert len(grid) == 2 and all(json.loads(g.read_text())["eval_split"] == "val" for g in grid)
    assert all(json.loads(g.read_text())["n_train"] == 20 for g in grid)  # the subset, scored on the val split
    selection = json.loads((workdir / "results/dataset_size/finetune/cnn_w8_d2/digits/n2-d0/selection.json")
                           .read_text())
    assert selection["validated"] and set(selection["grid"]) == {g.stem for g in grid}
    one_point = workdir / "results/budgets/scratch/cnn_w8_d2/digits/steps6"  # a grid of one point: no grid job
    assert not (one_point / "grid").exists()
    assert json.loads((one_point / "selection.json").read_text())["validated"] is False
    budget = json.loads((workdir / "results/budgets/scratch/cnn_w8_d2/digits/steps6/final.json").read_text())
    assert budget["steps"] == 6 and budget["n_train"] == json.loads(
        (workdir / "results/splits/digits.json").read_text())["n_train"]


def test_sweep_statistics_and_figures(sweeps_run):
    workdir, _ = sweeps_run
    summary = pd.read_csv(workdir / "results/stats/dataset_size.csv")
    two = summary[summary.examples_per_class == 2]
    assert len(two) == 3 * 2 and (two["draws"] == 2).all() and two["se"].notna().all()
    r = pd.read_csv(workdir / "results/stats/size_correlations.csv")
    assert set(r["mode"]) == {"linear", "finetune"} and (r["n_models"] == 3).all()
    few = pd.read_csv(workdir / "results/tables/few_shot.csv")
    assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", few["2/class"].iloc[0])
    convergence = pd.read_csv(workdir / "results/stats/convergence.csv")
    assert set(convergence["mode"]) <= {"finetune", "scratch", "scratch/finetune"}
    for name in ("fig8_convergence", "fig9_dataset_size"):
        for ext in ("pdf", "png"):
            assert (workdir / f"results/figures/{name}.{ext}").stat().st_size > 1000
    main = pd.read_csv(workdir / "results/stats/correlations.csv")  # the main study's statistics: main rows only
    assert (main.query("subset == 'all'")["n_models"] == 3).all()


def test_adding_a_size_or_a_draw_reruns_only_the_new_runs_and_the_aggregates(sweeps_run, tmp_path):
    workdir = tmp_path / "grown"
    shutil.copytree(sweeps_run[0], workdir, symlinks=True)
    config = tiny_sweeps_config()
    config["sweeps"]["dataset_size"].update(draws=3, examples_per_class={"digits": [2, 4, "all"]})
    planned = planned_jobs(run_with_configfile(workdir, config, "demo_sweeps.yaml", "-n", "--cores", "2").stdout)
    new = {"n2-d2", "n4-d0", "n4-d1", "n4-d2"}
    runs = [(rule, wc) for rule, wc in planned if wc]
    assert runs and all(wc.get("subset", wc.get("variant")) in new for _, wc in runs), runs
    assert {wc.get("subset", wc.get("variant")) for _, wc in runs} == new
    aggregates = {rule for rule, wc in planned if not wc}
    assert {"collect_results", "compute_sweep_statistics", "fig9_dataset_size"} <= aggregates
    assert not aggregates & {"pretrain_upstream", "extract_features", "fit_linear_probe", "make_split"}


def test_schedule_study_rows_gaps_and_figure(sweeps_run):
    workdir, _ = sweeps_run
    table = pd.read_csv(workdir / "results/tables/results.csv")
    runs = table[table.study == "schedules"]
    assert sorted(zip(runs["mode"], runs["schedule"], runs["norm"])) == [
        ("finetune", 1, "batchnorm"), ("finetune", 2, "batchnorm"), ("scratch", 1, "batchnorm"),
        ("scratch", 1, "groupnorm_ws"), ("scratch", 2, "batchnorm"), ("scratch", 2, "groupnorm_ws")]
    assert (runs["steps"] == 4 * runs["schedule"]).all()  # the cosine schedule spans multiple x the base steps
    log = (workdir / "logs/train_final_in_sweep/schedules/scratch/cnn_w8_d2/digits/x2-groupnorm_ws.log").read_text()
    assert "groupnorm_ws:" in log and "BatchNorm -> GroupNorm" in log  # converted, as for any CNN
    gaps = pd.read_csv(workdir / "results/stats/schedule_gaps.csv")
    assert len(gaps) == 4 and set(gaps["reference"]) == {"finetune at 1x", "finetune at 2x"}
    assert np.allclose(gaps["gap"], gaps["scratch_log_odds"] - gaps["finetune_log_odds"])
    summary = pd.read_csv(workdir / "results/stats/schedule_summary.csv")
    assert set(summary["size_group"]) == {"n_train<10000"} and len(summary) == 4
    for ext in ("pdf", "png"):
        assert (workdir / f"results/figures/fig_schedules.{ext}").stat().st_size > 1000
