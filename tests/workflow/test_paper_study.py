"""The paper study's datasets, read from trees in their real layouts, run through the workflow (VOC 2007 multi-label
included); prefetch reports what is in place and what is not; jobs run offline and name the prefetch command; a
configured ImageNet val folder replaces the config's top-1 with a measured one. (The full paper DAG's plan is checked
from the README's own commands in test_readme_commands.py.)"""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest
import timm
import torch
import yaml

from tests.paper_trees import write_dtd, write_voc2007
from transferbench.models import demo  # noqa: F401  (registers tb_democnn)

from .conftest import ROOT, snakemake

pytestmark = pytest.mark.workflow


def checkpoint_models(workdir) -> dict:
    models = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=3)
        torch.save({"state_dict": model.state_dict()}, workdir / f"cnn{seed}.pth")
        models[f"cnn{seed}"] = {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                "checkpoint": f"cnn{seed}.pth", "imagenet_top1": 50.0 + seed}
    return models


@pytest.fixture(scope="module")
def paper_like(tmp_path_factory):
    """Two checkpoint models on DTD and VOC 2007 in their real layouts under data_root: linear, knn, finetune."""
    workdir = tmp_path_factory.mktemp("paper_like")
    (workdir / "config").mkdir()
    write_dtd(workdir / "data")
    write_voc2007(workdir / "data")
    config = {"modes": ["linear", "knn", "finetune"], "data_root": "data", "models": checkpoint_models(workdir),
              "datasets": {"dtd": {"source": "dtd"}, "voc": {"source": "voc2007"}},
              "linear": {"num": 5, "wd_min": 1.0e-2, "wd_max": 1.0e+2}, "knn": {"ks": [1, 3]},
              "feature_space": {"enabled": True, "tsne": {"classes": 3, "max_per_class": 10}},
              "finetune": {"grid": {"lr": [0.01], "weight_decay": [1.0e-5]}, "steps": 4, "batch_size": 4,
                           "checkpoint_every": 2, "num_workers": 0}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--cores", "2")
    return workdir, config


def test_paper_datasets_run_through_the_workflow_with_their_metrics(paper_like):
    workdir, _ = paper_like
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert len(table) == 2 * 2 * 3 and set(table["mode"]) == {"linear", "knn", "finetune"}
    knn = json.loads((workdir / "results/knn/cnn0/voc.json").read_text())  # multi-label: neighbours' positives
    assert knn["mode"] == "knn" and knn["metric"] == "map_11point" and knn["chosen_k"] in (1, 3)
    space = pd.read_csv(workdir / "results/tables/feature_space.csv").set_index(["model", "dataset"])
    assert len(space) == 2 * 2 and space["class_separation"].loc[:, "dtd"].between(0, 1).all()
    assert space["class_separation"].loc[:, "voc"].isna().all()  # multi-label: noted, not measured
    for name in ("fig_class_separation", "fig4_tsne"):  # t-SNE by default on the single-label DTD
        assert (workdir / f"results/figures/{name}.png").stat().st_size > 1000
    assert set(table[table.dataset == "voc"]["metric"]) == {"map_11point"}  # the paper's metric, by default
    assert set(table[table.dataset == "dtd"]["metric"]) == {"top1"}
    assert set(table[table.dataset == "dtd"]["n_train"]) == {12}  # DTD's train + val lists of partition 1
    split = json.loads((workdir / "results/splits/voc.json").read_text())
    assert split["sizes"] == {"train": 3, "val": 2, "test": 4} and len(split["labels"]["test"][0]) == 20
    assert table["value"].between(0, 1).all()
    assert (workdir / "results/figures/fig2_correlation.pdf").is_file()


def test_prefetch_reports_what_is_in_place_and_names_what_is_not(paper_like):
    workdir, config = paper_like
    proc = snakemake(workdir, "--cores", "1", "prefetch", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (workdir / "logs/prefetch.log").read_text()
    assert "dtd: present under data" in log and "voc2007: present under data" in log
    assert "cnn0: local checkpoint cnn0.pth" in log

    missing = {**config, "datasets": {**config["datasets"], "cars": {"source": "stanford_cars"}}}
    (workdir / "config" / "missing.yaml").write_text(yaml.safe_dump(missing))
    proc = snakemake(workdir, "--cores", "1", "prefetch", "--configfile", str(workdir / "config/missing.yaml"),
                     check=False)
    assert proc.returncode != 0
    log = (workdir / "logs/prefetch.log").read_text()
    assert "prefetch could not get" in log and "cars: MissingDataError" in log and "by hand" in log


def test_jobs_run_offline_and_name_the_prefetch_for_missing_hub_weights(paper_like, tmp_path):
    workdir, config = paper_like
    hub = {**config, "models": {"r18": {"timm": "resnet18.a1_in1k", "imagenet_top1": 71.5}}}
    (workdir / "config" / "hub.yaml").write_text(yaml.safe_dump(hub))
    proc = snakemake(workdir, "--cores", "1", "results/features/r18/dtd.h5", "--configfile",
                     str(workdir / "config/hub.yaml"), check=False,
                     env={"HF_HOME": str(tmp_path / "empty_hf"), "HF_HUB_OFFLINE": "0"})  # the config wins
    assert proc.returncode != 0
    log = (workdir / "logs/extract_features/r18/dtd.log").read_text()
    assert "could not load hub weights 'resnet18.a1_in1k'" in log and "offline: True" in log
    assert "snakemake --cores 1 prefetch" in log
    assert not (workdir / "results/features/r18/dtd.h5").exists()


def test_imagenet_val_replaces_the_configured_top1_with_a_measured_one(paper_like):
    workdir, config = paper_like
    val = workdir / "imagenet_val"
    for i, wnid in enumerate(("n01440764", "n01443537", "n01484850")):  # the checkpoints' heads have 3 classes
        (val / wnid).mkdir(parents=True)
        for j in range(2):
            (val / wnid / f"ILSVRC2012_val_{i}{j}.JPEG").write_bytes(
                next((workdir / "data/dtd/dtd/images/banded").iterdir()).read_bytes())
    measured = {**config, "imagenet_val": "imagenet_val",
                "models": {k: {kk: vv for kk, vv in v.items() if kk != "imagenet_top1"}
                           for k, v in config["models"].items()}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(measured))
    snakemake(workdir, "--cores", "2")
    table = pd.read_csv(workdir / "results/tables/results.csv")
    for model in ("cnn0", "cnn1"):
        top1 = json.loads((workdir / f"results/imagenet/{model}.json").read_text())["top1"]
        rows = table[table.model == model]["imagenet_top1"].tolist()
        assert rows == pytest.approx([top1] * len(rows), abs=1e-3)  # the table keeps 6 digits
        assert top1 in (0.0, 100 / 3, 200 / 3, 100.0)  # 3 classes x 2 identical images: whole classes right


def test_paper_sweeps_switched_on_plan_fig8_and_fig9_offline(tmp_path):
    """config/paper.yaml's sweeps section as written, switched on (`enabled: true`), planned offline. The main
    study is cut to the sweeps' model and two datasets so the plan stays small; the sweeps' sizes, draws, budgets
    and grids are the file's."""
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    for sweep in config["sweeps"].values():
        assert sweep["enabled"] is False  # off by default
        sweep["enabled"] = True
    config["models"] = {"inception_v4": config["models"]["inception_v4"]}
    config["datasets"] = {d: config["datasets"][d] for d in ("cifar10", "flowers102")}
    sizes = config["sweeps"]["dataset_size"]["examples_per_class"]
    config["sweeps"]["dataset_size"]["examples_per_class"] = {d: sizes[d] for d in config["datasets"]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config/paper_sweeps.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n", "-q", "rules", "--configfile", tmp_path / "config/paper_sweeps.yaml")
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.MULTILINE)}
    subsets = (13 * 3) + (4 * 3)  # cifar10 1..4096 (13 sizes), flowers102 1..8 (4 sizes), 3 draws each
    budgets = 2 * (9 + 11)  # two datasets x (9 fine-tune budgets + 11 from scratch)
    assert counts["draw_subset"] == subsets and counts["fit_linear_probe_on_subset"] == subsets
    assert counts["train_final_in_sweep"] == 2 * subsets + budgets
    assert counts["train_grid_point_in_sweep"] == 56 * (2 * subsets + budgets)  # the paper's 7 x 8 grids
    assert "sweep budgets: 40 runs (1 models, modes finetune, scratch; finetune: 76, 152," in proc.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


def test_paper_bit_set_plans_the_bit_mode_for_the_bit_models_offline(tmp_path):
    """config/paper_bit.yaml as written, merged over config/paper.yaml on the command line; the paper study is cut to
    one of its models and two datasets (small images: CIFAR-10; larger: Flowers) so the plan stays small."""
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    config["models"] = {"inception_v4": config["models"]["inception_v4"]}
    config["datasets"] = {d: config["datasets"][d] for d in ("cifar10", "flowers102")}
    config.pop("sweeps", None)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/paper.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(ROOT / "config/paper_bit.yaml", tmp_path / "config/paper_bit.yaml")
    proc = snakemake(tmp_path, "-n", "-q", "rules", "--configfile", tmp_path / "config/paper.yaml",
                     tmp_path / "config/paper_bit.yaml")
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.MULTILINE)}
    assert counts["train_bit"] == 1 * 2 * 3 and counts["pick_bit_median"] == 2  # bit_m_r50x1 only, 3 seeds
    assert counts["compare_bit_to_grid"] == 1 and counts["fig_bit_vs_grid"] == 1
    assert counts["train_final"] == 2 * 2 * 2  # the paper's modes for both models, unchanged
    assert "2 models x 2 datasets x 4 modes (linear, finetune, scratch, bit)" in proc.stderr
    assert "bit: BiT-HyperRule (code version), 3 runs per model x dataset (median reported), 1 models, batch 512" \
        in proc.stderr
    plan = snakemake(tmp_path, "-n", "results/bit/bit_m_r50x1/cifar10/final.json",  # targets before --configfile
                     "results/bit/bit_m_r50x1/flowers102/final.json", "--configfile", tmp_path / "config/paper.yaml",
                     tmp_path / "config/paper_bit.yaml").stdout
    assert "results/images/cifar10/160px_bilinear.h5" in plan  # 32 px images: the rule's 160 / 128
    assert "results/images/flowers102/512px_bilinear.h5" in plan  # larger images: 512 / 480 (code version)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()

