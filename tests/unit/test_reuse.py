"""The reuse study (Vasconcelos et al. 2022): a backbone's stages and partial fine-tuning with the rest frozen
(BatchNorm statistics included), MLP heads on cached features, what sweeps.reuse expands to, and the study's points,
summary and gains from hand-made tables."""

import copy
import functools
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import timm
import torch
from timm.utils.model import FrozenBatchNorm2d  # the class timm.utils.freeze converts BatchNorms to
from torch import nn

import transferbench.models.demo  # noqa: F401  (registers tb_democnn with timm)
from transferbench.analysis import reuse
from transferbench.analysis.results import read_table, result_row, write_table
from transferbench.analysis.reuse_figures import plot_reuse
from transferbench.analysis.statistics import write_sweep_statistics
from transferbench.atomic import write_json
from transferbench.checks import validate_config
from transferbench.config import ConfigError, load_config
from transferbench.data.images import Preprocessing
from transferbench.models.spec import ModelSpec, build_model
from transferbench.models.stages import (
    Stage,
    describe_stages,
    freeze_all_but_last,
    parameter_stages,
    stage_modules,
    trainable_parameters,
)
from transferbench.predictions import load_predictions
from transferbench.probe.heads import build_head, head_parameters, run_head_probe
from transferbench.sweeps import head_name, parse_head_name, parse_stages_name, stages_name, sweep_runs, sweep_settings
from transferbench.train.loop import train_classifier
from transferbench.train.run import build_for_mode

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def demo_cnn(depth=2, width=4, num_classes=3):
    torch.manual_seed(0)
    return timm.create_model("tb_democnn", width=width, depth=depth, num_classes=num_classes)


def torchvision_model(name, num_classes=3):
    """A torchvision model as the workflow builds it (pretrained_cfg names its classifier), randomly initialized."""
    torch.manual_seed(0)
    return build_model(ModelSpec.from_config("tv", {"torchvision": name, "imagenet_top1": 70.0}), num_classes,
                       weights=False)


# --- stages -------------------------------------------------------------------------------------------------------

def test_demo_cnn_stages_are_its_feature_info_the_stem_then_each_stage():
    model = demo_cnn(depth=2)
    assert stage_modules(model) == ["features.0", "features.2", "features.4"]
    assert describe_stages(model, 32) == [Stage("features.0", 4, 1), Stage("features.2", 8, 2),
                                          Stage("features.4", 16, 4)]
    stages = parameter_stages(model, 32)
    assert stages["features.0.0.weight"] == 0 and stages["features.1.1.bias"] == 1  # the stride-2 block: stage 1
    assert stages["features.3.0.weight"] == stages["features.4.1.weight"] == 2
    assert stages["head.weight"] is stages["head.bias"] is None  # the classifier belongs to no stage


def test_timm_resnet_stages_come_from_its_feature_info():
    model = timm.create_model("resnet18", pretrained=False, num_classes=3)
    assert stage_modules(model) == ["act1", "layer1", "layer2", "layer3", "layer4"]
    stages = describe_stages(model, 64)
    assert [s.channels for s in stages] == [64, 64, 128, 256, 512]
    assert [s.reduction for s in stages] == [2, 4, 8, 16, 32]
    owners = parameter_stages(model, 64)
    assert owners["conv1.weight"] == owners["bn1.weight"] == 0  # the stem's conv and norm precede act1
    assert owners["layer4.1.bn2.bias"] == 4 and owners["fc.weight"] is None


def test_torchvision_resnet_stages_are_the_stem_then_layer1_to_layer4():
    model = torchvision_model("resnet18")
    assert stage_modules(model) == ["maxpool", "layer1", "layer2", "layer3", "layer4"]
    stages = describe_stages(model, 64)
    assert [s.channels for s in stages] == [64, 64, 128, 256, 512]
    assert [s.reduction for s in stages] == [4, 4, 8, 16, 32]
    owners = parameter_stages(model, 64)
    assert owners["conv1.weight"] == owners["bn1.bias"] == 0 and owners["layer1.0.conv1.weight"] == 1
    assert owners["fc.weight"] is owners["fc.bias"] is None  # pretrained_cfg's classifier


def test_torchvision_features_sequential_is_cut_where_the_next_child_changes_the_resolution():
    model = torchvision_model("mobilenet_v3_small").train()
    names = stage_modules(model, 64)
    assert names == ["features.0", "features.1", "features.3", "features.8", "features.12"]
    assert model.training  # the dummy forward pass ran in eval mode and left the mode as it was
    stages = describe_stages(model, 64)
    assert [s.reduction for s in stages] == [2, 4, 8, 16, 32] and stages[-1].channels == 576
    owners = parameter_stages(model, 64)
    assert owners["features.2.block.0.0.weight"] == 2  # between two stage outputs: the later stage's
    assert owners["classifier.0.weight"] == 4  # after the last stage, before the classifier: the last stage
    assert owners["classifier.3.weight"] is None


def test_a_model_without_known_stages_is_an_error_naming_its_class():
    class PlainNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

    with pytest.raises(ValueError, match=r"the stages of PlainNet are not known.*feature_info.*ResNet.*features"):
        stage_modules(PlainNet())
    with pytest.raises(ValueError, match="PlainNet"):
        freeze_all_but_last(PlainNet(), 1)


# --- partial fine-tuning ------------------------------------------------------------------------------------------

def toy_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = np.clip(rng.normal(60 * labels[:, None, None, None], 30, size=(n, 3, 20, 20)), 0, 255)
    return torch.as_tensor(images.astype(np.uint8)), labels


TRAIN = {"steps": 2, "batch_size": 8, "momentum": 0.9, "nesterov": True, "crop_scale": [0.5, 1.0], "flip": True,
         "weight_decay_divided_by_lr": False, "bn_momentum_rule": True, "eval_every": 100, "checkpoint_every": 100}


def train_steps(model):
    """The training loop's SGD steps (train mode, weight decay on every parameter given), in place."""
    images, labels = toy_data()
    pre = Preprocessing(16, (0.5,) * 3, (0.25,) * 3)
    train_classifier(model, images, labels, images[:8], labels[:8], pre, TRAIN, 0.1, 1e-3, "top1", seed=0,
                     device=torch.device("cpu"))


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def norm_stats(model, owners):
    """{stage: [running_mean/var names]} of the model's BatchNorms, by the stage of the norm's module."""
    stage_of = {name.rpartition(".")[0]: s for name, s in owners.items()}
    stats = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)):
            stats.setdefault(stage_of[name], []).extend([f"{name}.running_mean", f"{name}.running_var"])
    return stats


@pytest.mark.parametrize("build", [demo_cnn, lambda: torchvision_model("resnet18")], ids=["democnn", "tv_resnet18"])
def test_frozen_stages_and_their_batchnorm_statistics_do_not_move_in_training_the_last_stage_and_head_do(build):
    model = build()
    owners = parameter_stages(model, 16)
    stages = len(stage_modules(model, 16))
    frozen = freeze_all_but_last(model, 1, 16)
    assert frozen["stages"] == stages and frozen["trainable_stages"] == 1
    assert frozen["trainable_params"] == trainable_parameters(model) == sum(
        p.numel() for p in model.parameters() if p.requires_grad)
    assert frozen["total_params"] == sum(p.numel() for p in model.parameters())
    assert 0 < frozen["trainable_params"] < frozen["total_params"]
    for name, p in model.named_parameters():  # exactly the last stage's and the classifier's train
        assert p.requires_grad == (owners[name] in (None, stages - 1)), name
    before = snapshot(model)
    train_steps(model)
    after = snapshot(model)
    for name, stage in owners.items():
        if stage is not None and stage < stages - 1:
            assert torch.equal(after[name], before[name]), f"frozen {name} moved"
        else:
            assert not torch.equal(after[name], before[name]), f"trainable {name} did not move"
    stats = norm_stats(model, owners)
    for stage, names in stats.items():
        for name in names:
            moved = not torch.equal(after[name], before[name])
            assert moved == (stage == stages - 1), f"{name} (stage {stage}) moved: {moved}"
    frozen_norms = [m for n, m in model.named_modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen_norms) == sum(len(v) for s, v in stats.items() if s < stages - 1) // 2


def test_trainable_stages_out_of_range_is_an_error_naming_the_stage_count():
    for k in (4, -1):
        with pytest.raises(ValueError, match=rf"trainable_stages {k}: DemoCNN has 3 stages \(features\.0, "
                                             r"features\.2, features\.4\); expected 0 to 3"):
            freeze_all_but_last(demo_cnn(depth=2), k, 32)


def test_zero_trainable_stages_trains_the_classifier_alone_and_all_stages_train_everything():
    model = demo_cnn(depth=2)
    frozen = freeze_all_but_last(model, 0, 32)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert frozen["trainable_params"] == 16 * 3 + 3
    model = demo_cnn(depth=2)
    frozen = freeze_all_but_last(model, 3, 32)
    assert frozen["trainable_params"] == frozen["total_params"]
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())


def test_parameters_of_the_root_module_freeze_alone_not_the_whole_model():
    """A ViT holds cls_token and pos_embed on the model itself (the first stage's): freezing them must leave the
    last block and the classifier trainable."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32, patch_size=8,
                              depth=3)
    frozen = freeze_all_but_last(model, 1, 32)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not model.cls_token.requires_grad and not model.pos_embed.requires_grad
    assert {"head.weight", "head.bias", "blocks.2.attn.qkv.weight", "norm.weight"} <= trainable
    assert not any(n.startswith(("blocks.0.", "blocks.1.", "patch_embed.")) for n in trainable)
    assert frozen["trainable_params"] == sum(p.numel() for n, p in model.named_parameters()
                                             if n.startswith(("blocks.2.", "norm.", "head.")))


def test_batchnorms_without_parameters_before_the_cut_keep_their_statistics():
    """affine=False BatchNorms hold no parameter but running statistics: frozen with their stage too."""
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3,
                              norm_layer=functools.partial(nn.BatchNorm2d, affine=False))
    freeze_all_but_last(model, 1, 16)
    assert isinstance(model.bn1, FrozenBatchNorm2d) and isinstance(model.layer3[1].bn2, FrozenBatchNorm2d)
    assert isinstance(model.layer4[0].bn1, nn.BatchNorm2d)
    before = snapshot(model)
    train_steps(model)
    after = snapshot(model)
    assert torch.equal(after["layer1.0.bn1.running_mean"], before["layer1.0.bn1.running_mean"])
    assert not torch.equal(after["layer4.0.bn1.running_mean"], before["layer4.0.bn1.running_mean"])


def test_finetune_with_trainable_stages_loads_the_weights_then_freezes(tmp_path):
    source = demo_cnn(depth=1)
    torch.save(source.state_dict(), tmp_path / "upstream.pth")
    entry = {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1}, "pretrained": "upstream", "resolution": 16}
    spec = ModelSpec.from_config("cnn", entry, checkpoint=tmp_path / "upstream.pth")
    model = build_for_mode(spec, "finetune", 5, {"trainable_stages": 1}, seed=0)
    assert torch.equal(model.features[0][0].weight, source.features[0][0].weight)  # the checkpoint's, frozen
    assert not model.features[0][0].weight.requires_grad and model.features[2][0].weight.requires_grad
    assert model.head.out_features == 5 and model.head.weight.requires_grad
    assert isinstance(model.features[0][1], FrozenBatchNorm2d)
    full = build_for_mode(spec, "finetune", 5, {}, seed=0)  # no trainable_stages: everything trains
    assert trainable_parameters(full) == sum(p.numel() for p in full.parameters()) > trainable_parameters(model)


# --- heads --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hidden_layers", [0, 1, 2, 3])
def test_head_parameters_count_the_built_head(hidden_layers):
    d, k, w = 37, 5, 16
    head = build_head(d, k, hidden_layers, w)
    assert head_parameters(d, k, hidden_layers, w) == sum(p.numel() for p in head.parameters())
    assert len([m for m in head if isinstance(m, nn.Linear)]) == hidden_layers + 1
    if hidden_layers == 0:
        assert head_parameters(d, k) == (d + 1) * k  # the linear head


def test_head_names_round_trip():
    assert head_name(2, 512) == "mlp2-w512" and parse_head_name("mlp2-w512") == (2, 512)
    assert stages_name(3) == "last3" and parse_stages_name("last3") == 3
    with pytest.raises(ValueError, match=r"mlp<hidden layers>-w<width>"):
        parse_head_name("mlp2")
    with pytest.raises(ValueError, match=r"last<stages>"):
        parse_stages_name("first2")


def write_features(path, n=(60, 30, 30), d=6, k=3, seed=0):
    """A features file in the real HDF5 layout (transferbench.features.store): well separated classes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    with h5py.File(path, "w") as h5:
        for name, size in zip(("train", "val", "test"), n):
            labels = np.arange(size) % k
            group = h5.create_group(name)
            group.create_dataset("labels", data=labels)
            group.create_dataset("features", data=(centers[labels] + rng.normal(size=(size, d))).astype(np.float32))
        h5.attrs["model"], h5.attrs["split_hash"] = "m", "abc"
        h5.attrs["complete"] = True
    return path


HEAD_SETTINGS = {"steps": 60, "batch_size": 16}


def test_head_probe_chooses_on_val_refits_and_scores_test(tmp_path):
    features = write_features(tmp_path / "f.h5")
    grid = [{"lr": 1e6, "weight_decay": 1e-4}, {"lr": 0.01, "weight_decay": 1e-4},
            {"lr": 0.01, "weight_decay": 1e-2}]
    result = run_head_probe(features, "mlp1-w16", grid, HEAD_SETTINGS, "top1", tmp_path / "r.json",
                            tmp_path / "p.npz", num_classes=3, seed=0, expected={"model": "m", "split_hash": "abc"})
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["mode"] == "head" and saved["head"] == "mlp1-w16" and saved["metric"] == "top1"
    assert saved["trainable_params"] == head_parameters(6, 3, 1, 16) == (6 + 1) * 16 + (16 + 1) * 3
    assert saved["feature_dim"] == 6 and saved["n_train"] == 90 and saved["n_test"] == 30
    assert (saved["steps"], saved["batch_size"]) == (60, 16)
    path = saved["path"]
    assert [(p["lr"], p["weight_decay"]) for p in path] == [(g["lr"], g["weight_decay"]) for g in grid]
    assert [p["diverged"] for p in path] == [True, False, False]
    assert path[0]["val"] == pytest.approx(1 / 3)  # diverged: chance level (three balanced classes)
    vals = [p["val"] for p in path]
    assert vals[1] == vals[2] == 1.0  # an easy problem: a tie, which goes to the earlier point
    assert saved["chosen"] == {"lr": 0.01, "weight_decay": 1e-4}
    assert saved["value"] >= 0.95
    labels, scores = load_predictions(tmp_path / "p.npz")
    assert scores.shape == (30, 3) and np.mean(scores.argmax(1) == labels) == pytest.approx(saved["value"])


def test_head_probe_chooses_the_best_val_point_not_the_first(tmp_path):
    features = write_features(tmp_path / "f.h5")
    grid = [{"lr": 1e6, "weight_decay": 1e-4}, {"lr": 0.01, "weight_decay": 0.0}]
    saved = run_head_probe(features, "mlp2-w8", grid, HEAD_SETTINGS, "top1", tmp_path / "r.json",
                           tmp_path / "p.npz", num_classes=3, seed=1)
    assert saved["path"][0]["diverged"] and not saved["path"][1]["diverged"]
    assert saved["path"][1]["val"] > saved["path"][0]["val"] and saved["chosen"]["lr"] == 0.01
    assert saved["trainable_params"] == (6 + 1) * 8 + (8 + 1) * 8 + (8 + 1) * 3


def test_head_probe_whose_final_fit_diverges_is_an_error_naming_the_file(tmp_path):
    features = write_features(tmp_path / "f.h5")
    with pytest.raises(RuntimeError, match=r"f\.h5: the mlp1-w8 head's final fit diverged at lr 1000000\.0 "
                                           r"\(chosen on val\): lower the heads grid's learning rates"):
        run_head_probe(features, "mlp1-w8", [{"lr": 1e6, "weight_decay": 1e-4}], HEAD_SETTINGS, "top1",
                       tmp_path / "r.json", tmp_path / "p.npz", num_classes=3, seed=0)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "p.npz").exists()


def test_head_probe_refuses_features_of_another_model(tmp_path):
    features = write_features(tmp_path / "f.h5")
    with pytest.raises(ValueError, match=r"f\.h5 does not match: model: recorded 'm', expected 'other'"):
        run_head_probe(features, "mlp1-w8", [{"lr": 0.01, "weight_decay": 0.0}], HEAD_SETTINGS, "top1",
                       tmp_path / "r.json", tmp_path / "p.npz", num_classes=3, seed=0, expected={"model": "other"})


# --- sweeps.reuse -------------------------------------------------------------------------------------------------

CONFIG = {
    "modes": ["linear", "finetune"],
    "models": {"a": {"timm": "resnet18", "imagenet_top1": 70.0}, "b": {"timm": "resnet34", "imagenet_top1": 73.0}},
    "datasets": {"d1": {"source": "sklearn_digits", "metric": "top1"},
                 "d2": {"source": "sklearn_digits", "metric": "top1"}},
    "finetune": {"grid": {"lr": [0.1, 0.01], "weight_decay": [0.0]}, "steps": 100},
    "sweeps": {"reuse": {"datasets": ["d1"], "finetune": {"grid": {"lr": [0.05]}}}},
}


def test_reuse_sweep_gives_head_runs_and_last_k_runs_per_model_and_dataset():
    config = validate_config(copy.deepcopy(CONFIG), cross_references=False)  # the schema's defaults filled
    runs = sweep_runs(config)
    assert [(r.study, r.model, r.dataset, r.mode, r.variant) for r in runs] == [
        ("reuse", m, "d1", mode, variant) for m in ("a", "b")
        for mode, variant in (("head", "mlp1-w512"), ("head", "mlp2-w512"), ("finetune", "last1"),
                              ("finetune", "last2"))]
    assert [r.trained for r in runs[:4]] == [False, False, True, True]  # heads run on cached features
    settings = sweep_settings(config, "reuse", "finetune", "d1", "last2")
    assert settings["trainable_stages"] == 2 and settings["steps"] == 100
    assert settings["grid"] == {"lr": [0.05], "weight_decay": [0.0]}  # the study's finetune overrides
    config["sweeps"]["reuse"].update(models=["b"], datasets=["d1", "d2"], trainable_stages=[0],
                                     heads={**config["sweeps"]["reuse"]["heads"], "hidden_layers": [3], "width": 64})
    runs = sweep_runs(config)
    assert [(r.model, r.dataset, r.variant) for r in runs] == [("b", "d1", "mlp3-w64"), ("b", "d1", "last0"),
                                                              ("b", "d2", "mlp3-w64"), ("b", "d2", "last0")]
    assert sweep_settings(config, "reuse", "finetune", "d2", "last0")["trainable_stages"] == 0
    config["sweeps"]["reuse"]["enabled"] = False
    assert sweep_runs(config) == []


def test_reuse_needs_both_ends_linear_and_finetune():
    config = copy.deepcopy(CONFIG)
    config["modes"] = ["finetune"]
    with pytest.raises(ConfigError, match=r"'sweeps\.reuse': the heads are compared with the linear head: add "
                                          r"linear to modes"):
        validate_config(config, cross_references=False)
    config = copy.deepcopy(CONFIG)
    config["modes"] = ["linear"]
    with pytest.raises(ConfigError, match=r"'sweeps\.reuse\.trainable_stages': partial fine-tuning is compared with "
                                          r"full fine-tuning: add finetune to modes \(or set trainable_stages: \[\]\)"):
        validate_config(config, cross_references=False)
    config["sweeps"]["reuse"]["trainable_stages"] = []  # heads only: linear suffices
    validate_config(config, cross_references=False)
    config = copy.deepcopy(CONFIG)
    config["sweeps"]["reuse"]["models"] = ["c"]
    with pytest.raises(ConfigError, match=r"'sweeps\.reuse\.models': 'c' is not a model of the study; valid: a, b"):
        validate_config(config, cross_references=False)


# --- the study's points, summary and gains ------------------------------------------------------------------------

def logit(p):
    return math.log(p / (1 - p))


# (dataset, n_train): two small datasets and a large one, grouped at 10,000
DATASETS = {"small1": 500, "small2": 10000, "large": 20000}
# (study, mode, head, trainable_stages, trainable_params, value) of model a on each dataset, values by dataset
POINTS = [("main", "linear", "linear", None, 100), ("reuse", "head", "mlp1-w64", None, 1000),
          ("reuse", "head", "mlp2-w64", None, 2000), ("reuse", "finetune", "linear", 1, 5000),
          ("reuse", "finetune", "linear", 2, 8000), ("main", "finetune", "linear", None, 10000)]
VALUES = {"small1": [0.6, 0.7, 0.65, 0.75, 0.8, 0.85], "small2": [0.5, 0.55, 0.6, 0.7, 0.6, 0.9],
          "large": [0.7, 0.72, 0.74, 0.8, 0.85, 0.9]}


def reuse_rows():
    rows = []
    for dataset, n_train in DATASETS.items():
        for (study, mode, head, k, params), value in zip(POINTS, VALUES[dataset]):
            rows.append({"model": "a", "dataset": dataset, "mode": mode, "metric": "top1", "value": value,
                         "imagenet_top1": 70.0, "n_train": n_train if study == "main" else np.nan, "study": study,
                         "head": head, "trainable_stages": k, "trainable_params": params})
    rows.append({"model": "a", "dataset": "small1", "mode": "scratch", "metric": "top1", "value": 0.3,
                 "imagenet_top1": 70.0, "n_train": 500, "study": "main", "trainable_params": 123})  # in no series
    return pd.DataFrame(rows)


def test_size_groups_at_their_boundaries():
    assert reuse.size_group(10000, [10000]) == "<= 10,000" and reuse.size_group(10001, [10000]) == "> 10,000"
    assert reuse.size_group(1000, [10000, 1000]) == "<= 1,000"
    assert reuse.size_group(1001, [1000, 10000]) == "1,001-10,000"
    assert reuse.size_group(10000, [1000, 10000]) == "1,001-10,000"
    assert reuse.size_group(50000, [1000, 10000]) == "> 10,000"
    assert reuse.size_group(5, []) == "all"


def test_reuse_points_give_both_series_per_model_and_dataset():
    points = reuse.reuse_points(reuse_rows(), [10000])
    assert len(points) == 3 * 6  # the scratch row is in neither series
    small1 = points[points["dataset"] == "small1"]
    assert list(zip(small1["series"], small1["point"], small1["trainable_params"])) == [
        ("fine-tuned", "last 1", 5000), ("fine-tuned", "last 2", 8000), ("fine-tuned", "all", 10000),
        ("frozen + head", "linear", 100), ("frozen + head", "mlp1-w64", 1000), ("frozen + head", "mlp2-w64", 2000)]
    assert small1.set_index("point").loc["mlp1-w64", "log_odds"] == pytest.approx(logit(0.7))
    # the group from the main rows' n_train (the reuse rows carry none here); 10,000 is in the lower group
    groups = points.groupby("dataset")["size_group"].unique()
    assert groups.to_dict() == {"large": ["> 10,000"], "small1": ["<= 10,000"], "small2": ["<= 10,000"]}
    assert list(points["size_group"].unique()) == ["<= 10,000", "> 10,000"]  # sorted by group
    assert set(reuse.reuse_points(reuse_rows(), [100000])["size_group"]) == {"<= 100,000"}


def test_reuse_summary_averages_each_point_over_the_group_datasets():
    summary = reuse.reuse_summary(reuse.reuse_points(reuse_rows(), [10000]))
    assert len(summary) == 2 * 6 and set(summary["model"]) == {"a"}
    row = summary[(summary["size_group"] == "<= 10,000") & (summary["point"] == "last 2")].iloc[0]
    assert row["series"] == "fine-tuned" and row["datasets"] == 2 and row["trainable_params"] == 8000
    assert row["log_odds"] == pytest.approx((logit(0.8) + logit(0.6)) / 2)
    large = summary[summary["size_group"] == "> 10,000"]
    assert (large["datasets"] == 1).all()
    assert large.set_index("point").loc["linear", "log_odds"] == pytest.approx(logit(0.7))
    # within a group and series, ordered by trainable parameters (the figure's lines)
    frozen = summary[(summary["size_group"] == "<= 10,000") & (summary["series"] == "frozen + head")]
    assert list(frozen["point"]) == ["linear", "mlp1-w64", "mlp2-w64"]


def test_reuse_gains_give_every_head_and_partial_run_against_both_ends_none_picked_on_test():
    gains = reuse.reuse_gains(reuse.reuse_points(reuse_rows(), [10000]))
    assert (gains["model"] == "a").all() and set(gains["dataset"]) == {"large", "small1", "small2"}
    small2 = gains[gains["dataset"] == "small2"].set_index("point")
    assert sorted(small2.index) == ["last 1", "last 2", "mlp1-w64", "mlp2-w64"]  # every point, not a "best"
    assert small2.loc["mlp2-w64", "log_odds"] == pytest.approx(logit(0.6))
    assert small2.loc["mlp2-w64", "minus_linear"] == pytest.approx(logit(0.6) - logit(0.5))
    assert small2.loc["mlp2-w64", "minus_full"] == pytest.approx(logit(0.6) - logit(0.9))
    assert small2.loc["last 1", "minus_full"] == pytest.approx(logit(0.7) - logit(0.9))
    assert small2.loc["last 1", "series"] == "fine-tuned" and small2.loc["mlp2-w64", "series"] == "frozen + head"
    assert (gains[gains["dataset"] == "large"]["size_group"] == "> 10,000").all()
    # no heads and no partial runs (e.g. trainable_stages: []): no gains, not an error
    table = reuse_rows()
    assert reuse.reuse_gains(reuse.reuse_points(table[table["study"] == "main"], [10000])).empty


def test_the_ends_count_only_where_the_reuse_runs_are():
    """sweeps.reuse.datasets naming fewer datasets than the study: the linear and full fine-tuning points of the
    other datasets stay out, so every line of the figure averages the same datasets."""
    table = reuse_rows()
    table = table[(table["study"] == "main") | (table["dataset"] != "small1")]
    points = reuse.reuse_points(table, [10000])
    assert set(points["dataset"]) == {"small2", "large"}
    assert points[points["dataset"] == "small2"]["size_group"].iloc[0] == "<= 10,000"


def test_a_row_without_trainable_params_is_an_error_naming_it():
    table = reuse_rows()
    table.loc[(table["dataset"] == "small2") & (table["mode"] == "linear"), "trainable_params"] = np.nan
    with pytest.raises(ValueError, match=r"results without trainable_params \(rerun their jobs to record it\): "
                                         r"a small2 linear linear$"):
        reuse.reuse_points(table, [10000])


def test_reuse_statistics_from_a_results_table_and_the_figure(tmp_path):
    """Through the table's own writer and reader (Int64 columns, empty cells), as compute_sweep_statistics runs."""
    rows = []
    for i, r in reuse_rows().iterrows():
        result = tmp_path / f"r{i}.json"
        record = {"metric": "top1", "value": r["value"], "n_test": 50, "head": r.get("head"),
                  "trainable_params": int(r["trainable_params"])}
        if not pd.isna(r.get("trainable_stages")):
            record["trainable_stages"] = int(r["trainable_stages"])
        write_json(result, {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()})
        n_train = DATASETS[r["dataset"]]
        rows.append(result_row(r["model"], r["dataset"], r["mode"], result, 70.0, n_train, study=r["study"]))
    write_table(rows, tmp_path / "results.csv")
    table = read_table(tmp_path / "results.csv", study=None)
    assert str(table["trainable_params"].dtype) == "int64" and table["trainable_stages"].isna().sum() == 13
    names = ("reuse_points", "reuse_summary", "reuse_gains")
    out = write_sweep_statistics(tmp_path / "results.csv", {n: tmp_path / f"{n}.csv" for n in names},
                                 size_groups=[1000])
    assert all((tmp_path / f"{n}.csv").is_file() for n in names)
    summary = pd.read_csv(tmp_path / "reuse_summary.csv")
    assert set(summary["size_group"]) == {"<= 1,000", "> 1,000"} and len(summary) == 12
    assert len(out["reuse_gains"]) == 3 * 4  # 3 datasets x (2 heads + 2 partial runs)
    plot_reuse(summary, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").stat().st_size > 1000 and (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="no reuse points"):
        plot_reuse(summary.iloc[:0], tmp_path / "x.pdf", tmp_path / "x.png")


def test_model_tags_may_not_take_the_reuse_columns():
    config = load_config(ROOT / "config" / "config.yaml")
    next(iter(config["models"].values()))["tags"] = {"head": "mlp", "trainable_params": 1, "family": "cnn"}
    with pytest.raises(ConfigError, match=r"tags': head, trainable_params would overwrite the results table's own "
                                          r"column\(s\)"):
        validate_config(config)


def test_frozen_stages_stay_in_eval_mode_so_their_dropout_and_drop_path_are_off():
    model = timm.create_model("resnet18", pretrained=False, num_classes=3, drop_path_rate=0.5)
    freeze_all_but_last(model, 1, 64)
    model.train()
    assert not model.layer1.training and not model.layer3.training and not model.layer3[0].drop_path.training
    assert model.layer4.training and model.layer4[0].drop_path.training and model.fc.training
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a = model.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
        b = model.forward_intermediates(x, indices=[3], intermediates_only=True)[0]
    assert torch.equal(a, b)  # layer3's output: no stochastic depth in the frozen stages
