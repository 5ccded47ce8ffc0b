"""The detection stage: the detector built over a study backbone in each state (frozen, fine-tuned with frozen
BatchNorm, from scratch with GroupNorm) and capacity, what a config's detection section expands to, the split and
images of a detection dataset, the resumable, divergence-safe training job on the generated shapes, and the study's
detection rows, statistics and figures from hand-made tables."""

import copy
import json
import os
import signal

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d  # the class timm.utils.freeze converts BatchNorms to

import transferbench.detection.train as detection_train
import transferbench.models.demo  # noqa: F401  (registers tb_democnn with timm)
from transferbench.analysis.detection import detection_correlations, detection_summary
from transferbench.analysis.detection_figures import plot_detection_capacity, plot_detection_top1
from transferbench.analysis.results import detection_rows, read_table, write_table
from transferbench.analysis.stats import logit, pearson_r
from transferbench.atomic import read_json, write_json
from transferbench.checks import missing_data, validate_config
from transferbench.config import ConfigError
from transferbench.detection.annotations import BoxDataset, ImageBoxes, write_coco
from transferbench.detection.data import (
    DetectionDatasetSpec,
    DetectionImages,
    DetectionSplit,
    make_detection_split,
    read_source,
)
from transferbench.detection.detector import build_detector
from transferbench.detection.plan import (
    capacity_name,
    detection_grid,
    detection_problems,
    detection_runs,
    detection_settings,
)
from transferbench.detection.shapes import write_shapes_detection
from transferbench.detection.train import run_detection
from transferbench.models.spec import ModelSpec
from transferbench.train.loop import Preempted

pytestmark = pytest.mark.unit

SMALL = {"fpn_channels": 16, "head_convs": 0, "head_fc": 64}
LARGER = {"fpn_channels": 32, "head_convs": 1, "head_fc": 64}
SIZE = 48  # the shapes' image side, and the detector's min / max size
# a few steps of the demo's protocol at test size (the demo CNN with depth 2 has 3 stages at strides 1, 2, 4)
SETTINGS = {"steps": 6, "batch_size": 4, "momentum": 0.9, "warmup_steps": 2, "pyramid_stages": 2, "anchor_scale": 8,
            "rpn_proposals": {"train": 50, "test": 50}, "rois_per_image": 16, "detections_per_image": 20,
            "checkpoint_every": 100, "min_size": SIZE, "max_size": SIZE}
BATCHNORMS = (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread, as a workflow job with its one thread has (transferbench.workflow.job_context): on 2 shared
    cores a second thread makes these tiny steps many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """The demo CNN (width 8, depth 2) with weights from a checkpoint file, as a study model with weights is built."""
    path = tmp_path_factory.mktemp("weights") / "cnn.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("tb_democnn", width=8, depth=2).state_dict(), path)
    return ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 8, "depth": 2},
                                         "checkpoint": str(path), "imagenet_top1": 50.0}).with_preprocessing()


def detector(spec, state, capacity=SMALL, settings=SETTINGS, num_classes=3, size=SIZE):
    return build_detector(spec, num_classes, state, capacity, settings, size, size)


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """(dataset spec, split file) of a small generated shapes dataset, read through the COCO reader."""
    tmp = tmp_path_factory.mktemp("shapes")
    write_shapes_detection(tmp / "shapes", train_images=24, test_images=8, image_size=SIZE)
    spec = DetectionDatasetSpec.from_config("shapes", {"source": "generated", "metric": "coco_ap"},
                                            root=str(tmp / "shapes"))
    make_detection_split(spec, tmp / "split.json", seed=0)
    return spec, tmp / "split.json"


# --- the detector ---------------------------------------------------------------------------------------------------

def test_frozen_backbone_trains_only_the_pyramid_and_the_heads_with_batchnorm_statistics_frozen(cnn):
    model, description = detector(cnn, "frozen")
    body = model.backbone.body
    assert trainable(body) == 0 == description["backbone_trainable_params"]
    assert any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in body.modules())  # all converted
    for part in (model.backbone.fpn, model.rpn, model.roi_heads):
        assert all(p.requires_grad for p in part.parameters())
    assert description["trainable_params"] == trainable(model) > 0


def test_finetuned_backbone_trains_its_convolutions_with_batchnorm_frozen(cnn):
    model, description = detector(cnn, "finetune")
    body = model.backbone.body
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(p.requires_grad for m in convs for p in m.parameters())
    norms = [m for m in body.modules() if isinstance(m, BATCHNORMS)]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)  # statistics and affine fixed
    assert description["backbone_trainable_params"] == trainable(body) > 0
    frozen, _ = detector(cnn, "frozen")
    assert trainable(model) == trainable(frozen) + trainable(body)  # the same detector, plus the backbone


def test_weights_come_from_the_checkpoint_except_in_scratch(cnn):
    weights = torch.load(cnn.checkpoint, weights_only=True)["features.0.0.weight"]
    for state in ("frozen", "finetune"):
        assert torch.equal(detector(cnn, state)[0].backbone.body.features[0][0].weight, weights)
    assert not torch.equal(detector(cnn, "scratch")[0].backbone.body.features[0][0].weight, weights)


def test_scratch_backbone_has_groupnorm_and_no_batchnorm_and_trains_whole(cnn):
    model, description = detector(cnn, "scratch", capacity=LARGER)
    body = model.backbone.body
    assert not any(isinstance(m, BATCHNORMS) for m in body.modules())
    assert sum(isinstance(m, nn.GroupNorm) for m in body.modules()) == 5  # stem + 2 stages x 2 conv blocks
    assert trainable(body) == sum(p.numel() for p in body.parameters()) == description["backbone_trainable_params"]
    # the pyramid and the convolutional box head normalize with GroupNorm too (Rethinking ImageNet Pre-training)
    assert any(isinstance(m, nn.GroupNorm) for m in model.backbone.fpn.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.roi_heads.box_head.modules())
    assert not any(isinstance(m, nn.GroupNorm) for m in detector(cnn, "finetune", LARGER)[0].backbone.fpn.modules())


@pytest.mark.parametrize("state", ["frozen", "finetune", "scratch"])
def test_trainable_params_in_the_description_is_the_count_of_trainable_weights(cnn, state):
    model, description = detector(cnn, state, capacity=LARGER)
    assert description["trainable_params"] == trainable(model)
    assert description["backbone_params"] == sum(p.numel() for p in model.backbone.body.parameters())


def test_description_names_the_pyramid_stages_strides_and_anchors(cnn):
    _, description = detector(cnn, "frozen")  # the last 2 of the stem (stride 1) and 2 stages, + the pooled level
    assert description["stages"] == ["features.2", "features.4"]
    assert description["strides"] == [2, 4, 8] and description["anchor_sizes"] == [16, 32, 64]
    _, three = detector(cnn, "frozen", settings={**SETTINGS, "pyramid_stages": 3, "anchor_scale": 4})
    assert three["stages"] == ["features.0", "features.2", "features.4"] and three["anchor_sizes"] == [4, 8, 16, 32]


@pytest.mark.parametrize("change", [{"fpn_channels": 32}, {"head_convs": 2}, {"head_fc": 128}, {"rpn_convs": 2}],
                         ids=lambda c: next(iter(c)))
def test_each_capacity_knob_raised_gives_more_trainable_parameters(cnn, change):
    for state in ("frozen", "finetune"):
        base = detector(cnn, state)[1]["trainable_params"]
        assert detector(cnn, state, {**SMALL, **change})[1]["trainable_params"] > base


def test_pyramid_stages_out_of_range_raise_naming_the_backbones_stages(cnn):
    for wanted in (0, 4):
        with pytest.raises(ValueError, match=rf"pyramid_stages {wanted}: cnn has 3 stages \(features.0, features.2, "
                                             r"features.4\); expected 1 to 3"):
            detector(cnn, "frozen", settings={**SETTINGS, "pyramid_stages": wanted})
    with pytest.raises(ValueError, match="unknown backbone state 'partial'"):
        detector(cnn, "partial")


def test_detector_trains_and_detects_on_images_of_its_size(cnn):
    model, _ = detector(cnn, "finetune")
    images = [torch.rand(3, SIZE, SIZE) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 20.0, 24.0]]), "labels": torch.tensor([2])}] * 2
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        features = model.backbone(torch.rand(1, 3, SIZE, SIZE))
        out = model(images)
    assert list(features) == ["0", "1", "pool"] and [f.shape[-1] for f in features.values()] == [24, 12, 6]
    assert all(f.shape[1] == SMALL["fpn_channels"] for f in features.values())
    assert len(out) == 2 and all(set(o) == {"boxes", "scores", "labels"} for o in out)
    assert all(len(o["boxes"]) <= SETTINGS["detections_per_image"] for o in out)


def test_torchvision_resnet18_builds_from_its_last_three_stages():
    spec = ModelSpec.from_config("tv", {"torchvision": "resnet18", "pretrained": "checkpoint"}).with_preprocessing()
    model, description = build_detector(spec, 20, "scratch", SMALL, {}, 64, 64)
    assert description["stages"] == ["layer2", "layer3", "layer4"]
    assert description["strides"] == [8, 16, 32, 64] and description["anchor_sizes"] == [64, 128, 256, 512]
    assert not any(isinstance(m, BATCHNORMS) for m in model.backbone.body.modules())
    assert model.roi_heads.box_predictor.cls_score.out_features == 21  # 20 classes + background
    model.eval()
    with torch.no_grad():
        assert [f.shape[1] for f in model.backbone(torch.rand(1, 3, 64, 64)).values()] == [16] * 4


# --- the plan -------------------------------------------------------------------------------------------------------

CONFIG = {
    "models": {"a": {"timm": "resnet18", "imagenet_top1": 70.0}, "b": {"timm": "resnet34", "imagenet_top1": 73.0},
               "c": {"timm": "resnet50", "imagenet_top1": 76.0}},
    "detection": {
        "datasets": {
            "shapes": {"source": "generated", "generator": {"train_images": 20, "test_images": 5, "image_size": 64}},
            "mine": {"source": "coco", "train": {"instances": "tr.json", "images": "tr"},
                     "test": {"instances": "te.json", "images": "te"}, "min_size": 600},
            "voc": {"source": "voc2007"},
        },
        "states": ["frozen", "finetune"],
        "capacities": [{"fpn_channels": 16}, {"fpn_channels": 32, "head_convs": 2, "head_fc": 256, "rpn_convs": 2}],
        "train": {"grid": {"lr": [0.01, 0.02], "weight_decay": [0.0001]}, "steps": 100, "batch_size": 4},
        "scratch": {"steps": 300, "grid": {"lr": [0.05], "weight_decay": [0.0001]}},
    },
}


def config(**detection) -> dict:
    out = copy.deepcopy(CONFIG)
    out["detection"].update(detection)
    return out


def test_capacity_names_show_what_differs_from_torchvision():
    assert capacity_name({"fpn_channels": 256}) == "fpn256-conv0"
    assert capacity_name({"fpn_channels": 256, "head_convs": 4, "head_fc": 1024, "rpn_convs": 1}) == "fpn256-conv4"
    assert capacity_name(CONFIG["detection"]["capacities"][1]) == "fpn32-conv2-fc256-rpn2"


def test_runs_are_every_model_dataset_state_and_capacity():
    runs = detection_runs(config())
    assert len(runs) == 3 * 3 * 2 * 2 == len(set(runs))
    assert {r.model for r in runs} == {"a", "b", "c"} and {r.dataset for r in runs} == {"shapes", "mine", "voc"}
    assert {r.state for r in runs} == {"frozen", "finetune"}
    assert {r.capacity for r in runs} == {"fpn16-conv0", "fpn32-conv2-fc256-rpn2"}
    chosen = detection_runs(config(models=["c", "a"], states=["scratch"]))
    assert len(chosen) == 2 * 3 * 1 * 2 and {r.model for r in chosen} == {"a", "c"}
    assert detection_runs(config(enabled=False)) == [] and detection_runs({"models": CONFIG["models"]}) == []


def test_settings_merge_defaults_the_sections_train_the_scratch_overrides_and_the_datasets_sizes():
    c = config()
    frozen = detection_settings(c, "frozen", "mine")
    assert frozen["steps"] == 100 and frozen["batch_size"] == 4 and frozen["warmup_steps"] == 500  # default kept
    assert frozen["grid"] == {"lr": [0.01, 0.02], "weight_decay": [0.0001]}
    assert (frozen["min_size"], frozen["max_size"]) == (600, 1333)  # the entry's, else torchvision's default
    scratch = detection_settings(c, "scratch", "mine")
    assert scratch["steps"] == 300 and scratch["batch_size"] == 4 and scratch["grid"]["lr"] == [0.05]
    assert detection_settings(c, "finetune", "mine")["steps"] == 100  # only scratch takes the overrides
    assert (detection_settings(c, "frozen", "voc")["min_size"], detection_settings(c, "frozen", "voc")["max_size"]) \
        == (800, 1333)
    shapes = detection_settings(c, "frozen", "shapes")  # a generated dataset: its image size both ways
    assert (shapes["min_size"], shapes["max_size"]) == (64, 64)
    assert list(detection_grid(c, "frozen", "shapes")) == ["lr0.01_wd0.0001", "lr0.02_wd0.0001"]
    assert detection_grid(c, "scratch", "shapes") == {"lr0.05_wd0.0001": {"lr": 0.05, "weight_decay": 0.0001}}
    assert CONFIG["detection"]["train"]["steps"] == 100 and "min_size" not in CONFIG["detection"]["train"]  # unchanged


def test_default_metric_is_voc07_map50_for_voc_and_coco_ap_otherwise():
    c = config()
    c["detection"]["datasets"]["shapes"]["metric"] = "voc07_map50"  # a given metric is kept
    digits = {"digits": {"source": "sklearn_digits", "metric": "top1"}}  # (the schema wants a classification dataset)
    c = validate_config({**c, "datasets": digits}, cross_references=False)  # defaults: filled in by the config's check
    assert {n: e["metric"] for n, e in c["detection"]["datasets"].items()} == \
        {"shapes": "voc07_map50", "mine": "coco_ap", "voc": "voc07_map50"}


def test_problems_name_the_config_key_and_what_is_wrong():
    c = config(models=["a", "resnet9000"], capacities=[{"fpn_channels": 16}, {"fpn_channels": 16, "head_convs": 0}])
    del c["detection"]["datasets"]["mine"]["test"]
    del c["detection"]["datasets"]["shapes"]["generator"]
    problems = detection_problems(c)
    assert len(problems) == 4, problems
    assert problems[0].startswith("config key 'detection.models': 'resnet9000' is not a model of the study; valid: "
                                  "a, b, c")
    assert problems[1].startswith("config key 'detection.capacities': two entries describe the same detector")
    assert problems[2].startswith("config key 'detection.datasets.shapes.generator': a generated dataset needs")
    assert "config key 'detection.datasets.mine.test': a coco dataset needs test: {instances:" in problems[3]
    assert detection_problems(config(enabled=False, models=["nope"])) == []


def test_config_checks_stop_on_detection_problems_and_name_missing_coco_files(tmp_path, monkeypatch):
    c = {"modes": ["linear"], "models": copy.deepcopy(CONFIG["models"]),
         "datasets": {"digits": {"source": "sklearn_digits", "metric": "top1"}},
         "detection": {"datasets": copy.deepcopy(CONFIG["detection"]["datasets"]), "models": ["a", "z"]}}
    with pytest.raises(ConfigError, match="config key 'detection.models': 'z' is not a model"):
        validate_config(copy.deepcopy(c), cross_references=False)
    del c["detection"]["models"]
    checked = validate_config(c, cross_references=False)
    assert checked["detection"]["states"] == ["frozen", "finetune", "scratch"]  # the schema's defaults
    assert [capacity_name(k) for k in checked["detection"]["capacities"]] == ["fpn256-conv0", "fpn256-conv4"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tr").mkdir()
    (tmp_path / "tr.json").write_text("{}")
    own, fetchable = missing_data({**c, "data_root": str(tmp_path / "data")})
    assert own == ["config key 'detection.datasets.mine.test.instances': te.json is not a file (expected a "
                   "COCO-format instances.json and the folder of its images)",
                   "config key 'detection.datasets.mine.test.images': te is not a folder (expected a COCO-format "
                   "instances.json and the folder of its images)"]
    assert len(fetchable) == 1 and fetchable[0].startswith("config key 'detection.datasets.voc': ")  # no devkit


# --- data -----------------------------------------------------------------------------------------------------------

def test_split_holds_out_a_seeded_val_share_and_keeps_the_sources_test_set(shapes, tmp_path):
    spec, split_file = shapes
    split = DetectionSplit.load(split_file)
    assert split.dataset == "shapes" and split.classes == ["square", "disc", "triangle"]
    assert len(split.ids["val"]) == round(0.2 * 24) and len(split.ids["train"]) == 24 - len(split.ids["val"])
    assert sorted(split.ids["train"] + split.ids["val"], key=int) == [str(i) for i in range(24)]
    assert not set(split.ids["train"]) & set(split.ids["val"])
    assert split.ids["test"] == [str(i) for i in range(8)]  # the source's test images, in order
    body = read_json(split_file)
    assert body["sizes"] == {"train": 19, "val": 5, "test": 8} and len(body["hash"]) == 16
    assert set(body["exclusions"]) == {"train", "test"}
    assert all(v == 0 for part in body["exclusions"].values() for v in part.values())
    again = make_detection_split(spec, tmp_path / "again.json", seed=0)
    assert again.ids == split.ids and again.hash == split.hash
    other = make_detection_split(spec, tmp_path / "other.json", seed=1)
    assert other.ids["val"] != split.ids["val"] and other.hash != split.hash


def test_images_are_uint8_with_their_boxes_in_split_order(shapes):
    spec, split_file = shapes
    split = DetectionSplit.load(split_file)
    train = DetectionImages(spec, split, ("train", "val"))
    test = DetectionImages(spec, split, ("test",))
    assert len(train) == 24 and len(test) == 8
    assert [im.image_id for im in train.images] == split.ids["train"] + split.ids["val"]
    pixels, target = test[3]
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, SIZE, SIZE)
    truth = test.images[3]
    assert truth.image_id == "3" and truth.file == "images/test/3.png"
    assert np.array_equal(np.asarray(Image.open(f"{spec.root}/{truth.file}")).transpose(2, 0, 1), pixels.numpy())
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (len(truth.labels), 4)
    assert torch.equal(target["labels"], torch.from_numpy(truth.labels)) and not target["difficult"].any()
    assert train.trainable() == list(range(24))  # every shapes image has a box


def image(image_id, boxes, labels, difficult):
    return ImageBoxes(image_id=image_id, file=f"{image_id}.png", width=40, height=30,
                      boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4), labels=np.array(labels, dtype=np.int64),
                      difficult=np.array(difficult, dtype=bool))


def write_own_coco(root, classes=("cat", "dog"), test_classes=None):
    """A COCO-format dataset as a researcher brings it: instances files and a folder of images per part; train
    holds an image with a box, one whose only box is a crowd (difficult) and one without boxes."""
    parts = {"train": [image("1", [[2, 2, 20, 20]], [1], [False]), image("2", [[5, 5, 25, 25]], [2], [True]),
                       image("3", [], [], [])],
             "test": [image("7", [[1, 1, 10, 10]], [2], [False])]}
    entry = {"source": "coco", "metric": "coco_ap"}
    for part, images in parts.items():
        for im in images:
            (root / part).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((30, 40, 3), 90, dtype=np.uint8)).save(root / part / im.file)
        names = list(test_classes or classes) if part == "test" else list(classes)
        write_coco(BoxDataset(names, images), root / f"instances_{part}.json")
        entry[part] = {"instances": str(root / f"instances_{part}.json"), "images": str(root / part)}
    return entry


def test_trainable_leaves_out_images_whose_boxes_are_all_difficult_or_none(tmp_path):
    spec = DetectionDatasetSpec.from_config("mine", write_own_coco(tmp_path / "mine"))
    split = make_detection_split(spec, tmp_path / "split.json", seed=0)
    assert split.classes == ["cat", "dog"] and split.ids["test"] == ["7"]
    assert read_json(tmp_path / "split.json")["exclusions"]["train"]["images without boxes"] == 1
    data = DetectionImages(spec, split, ("train", "val"))
    assert sorted(im.image_id for im in data.images) == ["1", "2", "3"]
    assert [data.images[i].image_id for i in data.trainable()] == ["1"]
    crowd = data[[im.image_id for im in data.images].index("2")][1]
    assert crowd["difficult"].tolist() == [True] and crowd["labels"].tolist() == [2]  # kept, marked difficult


def test_coco_train_and_test_defining_different_categories_raise(tmp_path):
    spec = DetectionDatasetSpec.from_config("mine", write_own_coco(tmp_path / "mine", test_classes=("cat", "cow")))
    with pytest.raises(ValueError, match="detection dataset 'mine': its train and test annotations define different "
                                         "categories"):
        make_detection_split(spec, tmp_path / "split.json", seed=0)
    assert not (tmp_path / "split.json").exists()


def test_coco_source_without_its_files_and_an_unknown_source_raise_naming_the_key():
    spec = DetectionDatasetSpec.from_config("mine", {"source": "coco", "metric": "coco_ap",
                                                     "train": {"images": "x"}})
    with pytest.raises(ValueError, match="'mine' \\(source coco\\): config key 'train' needs instances"):
        read_source(spec, "train")
    with pytest.raises(ValueError, match="unknown source 'yolo'; expected one of coco, voc2007, generated"):
        DetectionDatasetSpec.from_config("mine", {"source": "yolo", "metric": "coco_ap"})


# --- the training job -----------------------------------------------------------------------------------------------

def detection_run(spec, shapes, out, state="finetune", phase="final", lr=0.02, settings=SETTINGS, checkpoint=None,
                  predictions=True):
    dataset, split_file = shapes
    return run_detection(state, spec, dataset, split_file, SMALL, settings, lr, 1e-4, phase, seed=5,
                         out_json=out / f"{phase}.json", checkpoint=checkpoint,
                         predictions_out=out / "detections.json" if predictions and phase == "final" else None,
                         point="lr0.02_wd0.0001", device="cpu")


@pytest.fixture(scope="module")
def final_fit(cnn, shapes, tmp_path_factory):
    """An uninterrupted final fit (train + val -> test): its folder and summary."""
    out = tmp_path_factory.mktemp("final")
    return out, detection_run(cnn, shapes, out)


def test_final_fit_reports_coco_metrics_and_what_trained(final_fit, cnn):
    out, summary = final_fit
    assert read_json(out / "final.json") == json.loads(json.dumps(summary))
    assert set(summary["metrics"]) == {"coco_ap", "coco_ap50", "coco_ap75"}
    assert all(0 <= v <= 1 for v in summary["metrics"].values())
    assert summary["metric"] == "coco_ap" and summary["value"] == summary["metrics"]["coco_ap"]
    assert summary["metrics"]["coco_ap50"] >= summary["metrics"]["coco_ap75"]
    assert summary["n_train"] == 24 and summary["n_eval"] == 8 and summary["eval_split"] == "test"
    assert summary["left_out_without_boxes"] == 0 and summary["steps"] == 6 and not summary["diverged"]
    assert summary["capacity"] == SMALL and summary["stages"] == ["features.2", "features.4"]
    frozen = detector(cnn, "frozen")[1]["trainable_params"]  # the same detector: its backbone trains besides
    assert summary["trainable_params"] == summary["backbone_trainable_params"] + frozen
    assert [loss["step"] for loss in summary["losses"]] == list(range(1, 7))
    assert all(np.isfinite(loss["loss"]) and loss["loss"] > 0 for loss in summary["losses"])


def test_grid_point_trains_on_train_and_scores_val(cnn, shapes, tmp_path):
    summary = detection_run(cnn, shapes, tmp_path, state="frozen", phase="grid")
    split = DetectionSplit.load(shapes[1])
    assert summary["eval_split"] == "val" and summary["n_eval"] == len(split.ids["val"])
    assert summary["n_train"] == len(split.ids["train"]) and summary["backbone_trainable_params"] == 0
    assert summary["point"] == "lr0.02_wd0.0001" and (tmp_path / "grid.json").is_file()
    assert not (tmp_path / "detections.json").exists()


def test_final_fit_writes_its_test_detections_in_cocos_results_format(final_fit, shapes):
    out, summary = final_fit
    detections = read_json(out / "detections.json")
    split = DetectionSplit.load(shapes[1])
    assert detections and all(set(d) == {"image_id", "category_id", "bbox", "score"} for d in detections)
    assert {str(d["image_id"]) for d in detections} <= set(split.ids["test"])  # the source's ids (integers)
    assert all(isinstance(d["image_id"], int) for d in detections)
    assert {d["category_id"] for d in detections} <= {1, 2, 3}  # labels 1..K
    for d in detections:
        x, y, w, h = d["bbox"]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0 and x + w <= SIZE + 0.01 and y + h <= SIZE + 0.01
        assert 0 <= d["score"] <= 1
    per_image = pd.Series([d["image_id"] for d in detections]).value_counts()
    assert per_image.max() <= SETTINGS["detections_per_image"]


def test_sigterm_checkpoints_and_the_resumed_run_ends_where_an_uninterrupted_one_ends(final_fit, cnn, shapes,
                                                                                      tmp_path, monkeypatch):
    _, reference = final_fit
    checkpoint = tmp_path / "final.ckpt"
    batches, calls = detection_train._training_batch, {"n": 0}

    def sigterm_at_step_4(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return batches(*args, **kwargs)

    monkeypatch.setattr(detection_train, "_training_batch", sigterm_at_step_4)
    with pytest.raises(Preempted, match="stopped by SIGTERM at step 4/6; .* rerun the job to resume"):
        detection_run(cnn, shapes, tmp_path, checkpoint=checkpoint)
    assert checkpoint.is_file() and not (tmp_path / "final.json").exists()
    assert not (tmp_path / "detections.json").exists()
    monkeypatch.setattr(detection_train, "_training_batch", batches)
    resumed = detection_run(cnn, shapes, tmp_path, checkpoint=checkpoint)
    assert resumed["losses"] == reference["losses"] and resumed["metrics"] == reference["metrics"]
    assert resumed["steps"] == 6
    assert read_json(tmp_path / "detections.json") == read_json(final_fit[0] / "detections.json")
    assert not checkpoint.exists()  # a finished job cleans up its checkpoint


def test_a_crashed_run_resumes_from_its_last_periodic_checkpoint(final_fit, cnn, shapes, tmp_path, monkeypatch):
    _, reference = final_fit
    checkpoint = tmp_path / "final.ckpt"
    batches, calls = detection_train._training_batch, {"n": 0}

    def crash_at_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise MemoryError("killed")
        return batches(*args, **kwargs)

    monkeypatch.setattr(detection_train, "_training_batch", crash_at_step_5)
    with pytest.raises(MemoryError):
        detection_run(cnn, shapes, tmp_path, checkpoint=checkpoint, settings={**SETTINGS, "checkpoint_every": 3})
    assert torch.load(checkpoint, weights_only=False)["state"]["step"] == 3
    monkeypatch.setattr(detection_train, "_training_batch", batches)
    resumed = detection_run(cnn, shapes, tmp_path, checkpoint=checkpoint, settings={**SETTINGS, "checkpoint_every": 3})
    assert resumed["losses"] == reference["losses"] and resumed["metrics"] == reference["metrics"]


def test_a_huge_learning_rate_diverges_to_zero_metrics_and_its_final_fit_raises(cnn, shapes, tmp_path):
    summary = detection_run(cnn, shapes, tmp_path, phase="grid", lr=1e6)
    assert summary["diverged"] and summary["steps"] < SETTINGS["steps"]
    assert summary["metrics"] == {"coco_ap": 0.0, "coco_ap50": 0.0, "coco_ap75": 0.0} and summary["value"] == 0.0
    assert read_json(tmp_path / "grid.json")["diverged"] is True
    with pytest.raises(RuntimeError, match=r"the final finetune detection fit of cnn on shapes diverged at lr "
                                           r"1000000.0: no test detections \(lower the learning rate\)"):
        detection_run(cnn, shapes, tmp_path, lr=1e6)
    assert not (tmp_path / "detections.json").exists() and not (tmp_path / "final.json").exists()


# --- rows, statistics and figures -----------------------------------------------------------------------------------

def run_json(path, metrics, n_train=40, n_eval=12, trainable_params=1000, steps=10):
    write_json(path, {"metrics": metrics, "n_train": n_train, "n_eval": n_eval, "trainable_params": trainable_params,
                      "steps": steps})
    return path


def test_detection_rows_are_one_per_metric_of_study_detection(tmp_path):
    result = run_json(tmp_path / "final.json", {"coco_ap": 0.3, "coco_ap50": 0.6, "coco_ap75": 0.25})
    rows = detection_rows("m", "shapes", "frozen", "fpn16-conv0", result, 71.5, "det.json", {"family": "cnn"})
    assert [r["metric"] for r in rows] == ["coco_ap", "coco_ap50", "coco_ap75"]
    assert [r["value"] for r in rows] == [0.3, 0.6, 0.25]
    for row in rows:
        assert row["study"] == "detection" and row["mode"] == "frozen" and row["detector"] == "fpn16-conv0"
        assert (row["n_train"], row["n_test"], row["steps"], row["trainable_params"]) == (40, 12, 10, 1000)
        assert row["imagenet_top1"] == 71.5 and row["family"] == "cnn" and row["predictions"] == "det.json"
    voc = run_json(tmp_path / "voc.json", {"voc07_map50": 0.5})
    assert [r["metric"] for r in detection_rows("m", "voc", "finetune", "fpn16-conv0", voc, 71.5)] == ["voc07_map50"]
    table = write_table(rows, tmp_path / "results.csv")
    assert table["detector"].tolist() == ["fpn16-conv0"] * 3 and str(table["trainable_params"].dtype) == "Int64"
    assert read_table(tmp_path / "results.csv").empty  # not main rows
    assert len(read_table(tmp_path / "results.csv", study=None)) == 3


TOP1 = {"m1": 60.0, "m2": 65.0, "m3": 70.0, "m4": 75.0}
FROZEN_AP = {"m1": 0.10, "m2": 0.20, "m3": 0.25, "m4": 0.40}  # rises with top-1
FINETUNE_AP = {"m1": 0.40, "m2": 0.30, "m3": 0.45, "m4": 0.35}  # hardly


@pytest.fixture
def detection_table(tmp_path):
    """A results table as collect_results writes it: 4 models x frozen / finetune x 2 detectors, 3 metrics each,
    beside a main row."""
    rows = [{"model": "m1", "dataset": "digits", "mode": "linear", "metric": "top1", "value": 0.9,
             "imagenet_top1": 60.0, "n_train": 100, "n_test": 50, "study": "main"}]
    for detector, scale, params in (("fpn16-conv0", 1.0, 1000), ("fpn32-conv1", 1.1, 5000)):
        for state, ap in (("frozen", FROZEN_AP), ("finetune", FINETUNE_AP)):
            for model, top1 in TOP1.items():
                result = run_json(tmp_path / f"{detector}-{state}-{model}.json",
                                  {"coco_ap": ap[model] * scale, "coco_ap50": 0.9, "coco_ap75": ap[model] / 2},
                                  trainable_params=params * (2 if state == "finetune" else 1))
                rows += detection_rows(model, "shapes", state, detector, result, top1)
    write_table(rows, tmp_path / "results.csv")
    return read_table(tmp_path / "results.csv", study=None)


def test_summary_keeps_the_detection_rows_with_log_odds_and_the_primary_metric(detection_table):
    summary = detection_summary(detection_table)
    assert len(summary) == 2 * 2 * 4 * 3 and set(summary["state"]) == {"frozen", "finetune"}
    assert summary["primary"].sum() == 2 * 2 * 4 and set(summary[summary["primary"]]["metric"]) == {"coco_ap"}
    np.testing.assert_allclose(summary["log_odds"], logit(summary["value"]))
    assert set(summary["trainable_params"]) == {1000, 2000, 5000, 10000}
    with pytest.raises(ValueError, match="no detection rows"):
        detection_summary(detection_table[detection_table["study"] == "main"])


def test_correlations_give_r_per_state_and_the_frozen_minus_finetune_difference(detection_table):
    correlations = detection_correlations(detection_summary(detection_table), n_boot=200)
    assert len(correlations) == 2 * 3  # per detector: frozen, finetune, frozen - finetune
    assert (correlations["metric"] == "coco_ap").all() and (correlations["models"] == 4).all()
    rows = correlations[correlations["detector"] == "fpn16-conv0"].set_index("state")
    top1 = list(TOP1.values())
    frozen = pearson_r(top1, logit(list(FROZEN_AP.values())))
    tuned = pearson_r(top1, logit(list(FINETUNE_AP.values())))
    assert rows.loc["frozen", "r"] == pytest.approx(frozen) and rows.loc["finetune", "r"] == pytest.approx(tuned)
    assert rows.loc["frozen - finetune", "r"] == pytest.approx(frozen - tuned) and frozen > 0.9
    for state in rows.index:
        assert rows.loc[state, "r_low"] <= rows.loc[state, "r"] <= rows.loc[state, "r_high"]
    assert (rows["note"].fillna("") == "").all()
    again = detection_correlations(detection_summary(detection_table), n_boot=200)
    pd.testing.assert_frame_equal(correlations, again)  # seeded


def test_correlations_with_fewer_than_three_models_say_why_r_is_missing(detection_table):
    two = detection_table[~detection_table["model"].isin(["m3", "m4"])]
    correlations = detection_correlations(detection_summary(two), n_boot=50)
    assert correlations["r"].isna().all() and correlations["r_low"].isna().all()
    assert (correlations["note"] == "r needs at least 3 models (2 here)").all()


def test_detection_figures_are_written(detection_table, tmp_path):
    summary = detection_summary(detection_table)
    correlations = detection_correlations(summary, n_boot=50)
    plot_detection_top1(summary, correlations, tmp_path / "top1.pdf", tmp_path / "top1.png")
    plot_detection_capacity(summary, tmp_path / "capacity.pdf", tmp_path / "capacity.png")
    for name in ("top1", "capacity"):
        assert (tmp_path / f"{name}.pdf").stat().st_size > 1000
        assert Image.open(tmp_path / f"{name}.png").size[0] > 300


# --- PASCAL VOC 2007 through the whole job --------------------------------------------------------------------------

def write_voc_detection_tree(root, sizes=(("trainval", 10), ("test", 4))):
    """A VOC devkit tree in the real layout: JPEGs with a bright box where the annotation XML puts a 'dog' (1-based
    inclusive coordinates), image 000000 with only a difficult 'cat'."""
    base = root / "VOCdevkit" / "VOC2007"
    for folder in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    rng, n = np.random.default_rng(0), 0
    for split, count in sizes:
        names = []
        for _ in range(count):
            name = f"{n:06d}"
            n += 1
            x1, y1 = (int(v) for v in rng.integers(1, 20, size=2))
            x2, y2 = x1 + int(rng.integers(12, 24)), y1 + int(rng.integers(12, 24))
            pixels = np.full((SIZE, SIZE, 3), 40, np.uint8)
            pixels[y1 - 1:y2, x1 - 1:x2] = 230
            Image.fromarray(pixels).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
            cls, hard = ("cat", 1) if name == "000000" else ("dog", 0)
            (base / "Annotations" / f"{name}.xml").write_text(
                f"<annotation><size><width>{SIZE}</width><height>{SIZE}</height><depth>3</depth></size>"
                f"<object><name>{cls}</name><difficult>{hard}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
                f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>")
            names.append(name)
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")


def test_voc2007_detection_trains_on_trainval_leaves_difficult_only_images_out_and_scores_voc07_map50(cnn, tmp_path):
    write_voc_detection_tree(tmp_path / "data")
    spec = DetectionDatasetSpec.from_config("voc07_detection", {"source": "voc2007", "metric": "voc07_map50",
                                                                "val_fraction": 0.2}, root=str(tmp_path / "data"))
    split = make_detection_split(spec, tmp_path / "split.json", seed=0)
    assert len(split.classes) == 20 and len(split.ids["test"]) == 4
    assert len(split.ids["train"]) + len(split.ids["val"]) == 10 and len(split.ids["val"]) == 2
    result = run_detection("finetune", cnn, spec, tmp_path / "split.json", SMALL, dict(SETTINGS, steps=3), lr=0.01,
                           weight_decay=1e-4, phase="final", seed=0, out_json=tmp_path / "final.json",
                           checkpoint=tmp_path / "final.ckpt", predictions_out=tmp_path / "detections.json",
                           device="cpu")
    assert set(result["metrics"]) == {"voc07_map50"} and 0 <= result["value"] <= 1
    assert result["n_train"] + result["left_out_without_boxes"] == 10
    assert result["left_out_without_boxes"] == ("000000" in split.ids["train"] + split.ids["val"])
    assert {d["image_id"] for d in read_json(tmp_path / "detections.json")} <= set(split.ids["test"])  # '000010'
    assert all(isinstance(d["image_id"], str) for d in read_json(tmp_path / "detections.json"))  # stems stay
