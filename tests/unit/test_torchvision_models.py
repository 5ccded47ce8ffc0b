"""torchvision models by configuration: weights tags, local checkpoints, penultimate features, config checks."""

import pytest
import torch
import torchvision

from transferbench.features.extract import extract_to_hdf5
from transferbench.features.store import load_features
from transferbench.models.spec import ModelSpec, build_model, model_problems
from transferbench.models.tv_adapter import torchvision_cfg

pytestmark = pytest.mark.unit


@pytest.fixture
def resnet18_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    return source, path


def test_checkpoint_loads_and_features_are_the_input_of_the_last_linear(resnet18_checkpoint):
    source, path = resnet18_checkpoint
    spec = ModelSpec.from_config("tv", {"torchvision": "resnet18", "checkpoint": str(path), "imagenet_top1": 69.8})
    model = build_model(spec, num_classes=0).eval()
    assert model.num_features == 512
    source.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source.eval()(x))
    tuned = build_model(spec, num_classes=3)
    assert tuned.fc.out_features == 3 and torch.equal(tuned.conv1.weight, source.conv1.weight)


def test_extraction_records_the_torchvision_model(tmp_path, resnet18_checkpoint, imagefolder_split):
    _, path = resnet18_checkpoint
    spec = ModelSpec.from_config("tv", {"torchvision": "resnet18", "checkpoint": str(path), "imagenet_top1": 69.8,
                                        "resolution": 32})
    dataset, split, split_path = imagefolder_split
    extract_to_hdf5(spec, dataset, split_path, tmp_path / "f.h5")
    features = load_features(tmp_path / "f.h5", {"torchvision": "resnet18", "crop_pct": 0.875})
    assert features["test"][0].shape == (split.sizes()["test"], 512)


def test_weights_tag_gives_its_own_preprocessing():
    cfg = torchvision_cfg("resnet50.IMAGENET1K_V2")  # metadata only: nothing is downloaded
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == pytest.approx(224 / 232)
    assert cfg["interpolation"] == "bilinear" and cfg["mean"] == (0.485, 0.456, 0.406)
    assert torchvision_cfg("resnet50")["crop_pct"] == pytest.approx(0.875)


def test_config_problems_name_what_is_wrong():
    problems = model_problems({"torchvision": "resnet5O.IMAGENET1K_V1", "imagenet_top1": 76})
    assert "did you mean 'resnet50'" in problems[0]
    assert "IMAGENET1K_V2" in model_problems({"torchvision": "resnet50", "imagenet_top1": 80.9})[0]  # tag required
    assert "unknown weights 'V3'" in model_problems({"torchvision": "resnet50.V3", "imagenet_top1": 80.9})[0]
    assert "exactly one" in model_problems({"timm": "resnet50.a1_in1k", "torchvision": "resnet50"})[0]
    assert model_problems({"torchvision": "resnet50.IMAGENET1K_V2", "imagenet_top1": 80.9}) == []
