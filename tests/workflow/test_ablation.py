"""The regularizer ablation demo (config/demo_ablation.yaml) end to end at a tiny size, through --configfile as the
README runs it: both architectures under two of the five settings (C1 and C5: all four regularizers, none), the
linear and kNN probes and fine-tuning on two datasets (the demo's digits and a generated one, so that each step's
paired test over datasets has an interval); one run feeds every assert."""

import json

import pandas as pd
import pytest
import yaml

from .conftest import ROOT, run_with_configfile

pytestmark = pytest.mark.workflow
DEMO = ROOT / "config" / "demo_ablation.yaml"
SETTINGS = ["C1", "C5"]


def tiny_ablation_config() -> dict:
    config = yaml.safe_load(DEMO.read_text())
    config["upstream"]["dataset"].update(classes=8, train_per_class=12, test_per_class=6, size=16)
    config["upstream"]["train"].update(steps=8, batch_size=16)
    config["models"] = {name: {**entry, "resolution": 16} for name, entry in config["models"].items()
                        if entry["tags"]["setting"] in SETTINGS}
    config["datasets"]["digits"].update(test_fraction=0.5, val_fraction=0.3)
    marks = {"kind": "marks", "train_per_class": 6, "test_per_class": 4, "size": 16}  # a second dataset: paired tests
    config["datasets"]["marks"] = {"source": "generated", "metric": "mean_per_class", "generator": marks}
    config["linear"] = {"num": 5, "wd_min": 1.0e-2, "wd_max": 1.0e2}
    config["finetune"].update(steps=4, batch_size=16, checkpoint_every=2)
    config["ablation"]["order"] = SETTINGS
    config["feature_space"]["tsne"].update(classes=4, max_per_class=10)
    return config


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ablation")
    run_with_configfile(workdir, tiny_ablation_config(), "demo_ablation.yaml", "--cores", "2")
    return workdir


def test_each_setting_is_pretrained_with_its_regularizers(ablation_run):
    c1 = json.loads((ablation_run / "results/upstream/w8_C1/metrics.json").read_text())
    c5 = json.loads((ablation_run / "results/upstream/w8_C5/metrics.json").read_text())
    assert c1["label_smoothing"] == 0.1 and c1["aux_weight"] == 0.4
    assert c5["label_smoothing"] == 0.0 and c5["aux_weight"] == 0.0


def test_results_carry_the_tags_and_the_steps_are_tested(ablation_run):
    table = pd.read_csv(ablation_run / "results/tables/results.csv")
    assert set(table["mode"]) == {"linear", "knn", "finetune"} and len(table) == 4 * 2 * 3
    assert set(table["setting"]) == set(SETTINGS) and set(table["architecture"]) == {"cnn_w8_d2", "cnn_w16_d2"}
    steps = pd.read_csv(ablation_run / "results/stats/regularizer_steps.csv")
    assert len(steps) == 3 * 2  # modes x architectures x the one step, C1 -> C5
    assert set(zip(steps["from"], steps["to"])) == {("C1", "C5")}
    assert (steps["n_datasets"] == 2).all() and steps["mean_difference"].notna().all()
    settings = pd.read_csv(ablation_run / "results/stats/regularizer_settings.csv")
    assert len(settings) == 3 * 2 * 2 and settings["imagenet_top1"].between(0, 100).all()


def test_figures_and_the_feature_space(ablation_run):
    for name in ("fig3_regularizers", "fig4_tsne", "fig_class_separation", "fig2_correlation"):
        for ext in ("pdf", "png"):
            assert (ablation_run / f"results/figures/{name}.{ext}").stat().st_size > 1000, name
    space = pd.read_csv(ablation_run / "results/tables/feature_space.csv")
    assert len(space) == 4 * 2 and space["class_separation"].between(0, 1).all()
