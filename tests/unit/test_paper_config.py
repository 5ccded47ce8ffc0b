"""config/paper.yaml: the paper's 16 models and 12 datasets, valid offline, with the paper's resolutions and
metrics, and penultimate features as wide as each architecture's num_features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transferbench.checks import validate_config
from transferbench.config import load_config
from transferbench.data.paper import PAPER_DATASETS
from transferbench.models.spec import ModelSpec, build_model

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).resolve().parents[2] / "config"
# The paper's input resolutions (its models at their published sizes); substitutes at their own weights' size.
RESOLUTION = {"inception_v1": 224, "bn_inception": 299, "inception_v3": 299, "inception_v4": 299,
              "inception_resnet_v2": 299, "resnet50": 224, "resnet101": 224, "resnet152": 224, "densenet121": 224,
              "densenet169": 224, "densenet201": 224, "mobilenet_v1": 224, "mobilenet_v2": 224,
              "mobilenet_v2_1.4": 224, "nasnet_a_mobile": 224, "nasnet_a_large": 331}


@pytest.fixture(scope="module")
def paper():
    return validate_config(load_config(CONFIG / "paper.yaml"))  # timm's and torchvision's registries, offline


def test_paper_config_has_the_16_models_and_12_datasets_with_the_paper_metrics(paper):
    assert list(paper["models"]) == list(RESOLUTION)
    assert all(entry.get("imagenet_top1") for entry in paper["models"].values())
    assert all("." in (entry.get("timm") or entry.get("torchvision")) for entry in paper["models"].values())
    assert sorted(e["source"] for e in paper["datasets"].values()) == sorted(PAPER_DATASETS)
    assert {e["source"]: e["metric"] for e in paper["datasets"].values()} == \
        {s: d.metric for s, d in PAPER_DATASETS.items()}
    assert paper["modes"] == ["linear", "finetune", "scratch"]
    assert (paper["linear"]["num"], paper["linear"]["wd_min"], paper["linear"]["wd_max"]) == (45, 1e-6, 1e5)


def test_paper_models_take_resolution_and_normalization_from_their_pretrained_config(paper):
    for name, entry in paper["models"].items():
        spec = ModelSpec.from_config(name, entry).with_preprocessing()
        assert spec.resolution == RESOLUTION[name], name
        assert len(spec.mean) == 3 and 0 < spec.crop_pct <= 1
    assert ModelSpec.from_config("x", paper["models"]["inception_v3"]).with_preprocessing().mean == (0.5, 0.5, 0.5)


def test_paper_bit_set_merges_as_gn_ws_resnet_v2(paper):
    bit = validate_config({**load_config(CONFIG / "paper.yaml"),
                           "models": {**paper["models"], **load_config(CONFIG / "paper_bit.yaml")["models"]}})
    spec = ModelSpec.from_config("bit_m_r50x1", bit["models"]["bit_m_r50x1"]).with_preprocessing()
    assert (spec.resolution, spec.mean) == (448, (0.5, 0.5, 0.5))
    model = build_model(spec, num_classes=0, weights=False)
    assert any(type(m).__name__ == "GroupNormAct" for m in model.modules())
    assert any(type(m).__name__ == "StdConv2d" for m in model.modules())


@torch.inference_mode()
def test_penultimate_features_are_num_features_wide_for_every_paper_model(paper):
    for name, entry in paper["models"].items():
        spec = ModelSpec.from_config(name, entry).with_preprocessing()
        with torch.device("meta"):  # shapes propagate through every layer without memory or arithmetic
            model = build_model(spec, num_classes=0, weights=False).eval()  # the architecture, without hub weights
            features = model(torch.zeros(1, 3, spec.resolution, spec.resolution))
            assert features.shape == (1, model.num_features), name
            head = build_model(spec, num_classes=7, weights=False).eval()
            assert head(torch.zeros(1, 3, spec.resolution, spec.resolution)).shape == (1, 7), name
