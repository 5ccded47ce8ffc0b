"""The study's projected footprint (transferbench.footprint): bytes and GPU-hours from the plan and the rates, the
sizes that cannot be projected named, and feature widths from architectures built without memory or weights."""

import math

import pytest

from transferbench.footprint import TrainingJobs, project, summary
from transferbench.models.spec import ModelSpec, feature_width

pytestmark = pytest.mark.unit
RATES = {"cache_bytes_per_pixel": 0.5, "train_images_per_gpu_second": 100, "extract_images_per_gpu_second": 1000}


def test_bytes_and_hours_follow_the_plan_and_the_rates():
    table = project({"a": 1000, "cifar": 60_000}, [("a", 256, "bilinear"), ("cifar", 256, "bicubic")],
                    [("m", "a"), ("m", "cifar")], {"m": 2048}, 4,
                    [TrainingJobs("m", "a", "finetune", jobs=57, steps=20_000, batch_size=256)], RATES,
                    imagenet_val_models=2, image_sides={"cifar": 32})
    rows = table.set_index("name")
    assert rows.loc["a 256 px bilinear", "bytes"] == 1000 * 256 * 256 * 0.5
    assert rows.loc["cifar 256 px bicubic", "bytes"] == 60_000 * 3 * 32 * 32  # small originals kept as they are
    assert rows.loc["m / a", "bytes"] == 1000 * 2048 * 4
    assert math.isclose(rows.loc["m / cifar", "gpu_hours"], 60_000 / 1000 / 3600)
    assert math.isclose(rows.loc["finetune m / a", "gpu_hours"], 57 * 20_000 * 256 / 100 / 3600)
    assert rows.loc["finetune m / a", "jobs"] == 57
    assert math.isclose(rows.loc["ImageNet val", "gpu_hours"], 2 * 50_000 / 1000 / 3600)
    text = summary(table)
    assert text.startswith(f"transferbench footprint: disk {table['bytes'].sum() / 1e9:,.1f} GB")
    assert "  training: 57 job(s), 811 GPU-hours" in text and "  image cache: 2 file(s)" in text


def test_a_dataset_of_unknown_size_is_named_not_guessed():
    table = project({"mine": None}, [("mine", 256, "bilinear")], [("m", "mine")], {"m": 512}, 2, [], RATES)
    assert table["bytes"].isna().all()
    assert "not projected" in summary(table, ["mine"]) and "mine" in summary(table, ["mine"])


@pytest.mark.parametrize("entry, width", [
    ({"timm": "resnet18.tv_in1k"}, 512),
    ({"timm": "inception_v4.tf_in1k"}, 1536),
    ({"torchvision": "googlenet.IMAGENET1K_V1", "kwargs": {"aux_logits": False}}, 1024),
    ({"timm": "tb_democnn", "kwargs": {"width": 8, "depth": 2}, "pretrained": "upstream"}, 32),  # width x 2^(depth - 1)
])
def test_feature_width_from_the_architecture_on_the_meta_device(entry, width):
    assert feature_width(ModelSpec.from_config("m", entry)) == width
