"""timm `name.tag` models load their hub weights through timm and huggingface_hub; here offline, from a Hugging Face
cache the test fills in the real layout (what a prefetch leaves on a compute node)."""

import huggingface_hub
import pytest
import timm
import torch
from safetensors.torch import save_file

from transferbench.features.extract import extract_to_hdf5
from transferbench.features.store import load_features
from transferbench.models.spec import ModelSpec, build_model

pytestmark = pytest.mark.unit


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def put_in_hub_cache(cache, repo: str, state_dict) -> None:
    """models--{org}--{name}/refs/main -> snapshots/<commit>/model.safetensors, huggingface_hub's cache layout."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, folder / "snapshots" / commit / "model.safetensors")


def test_tagged_model_loads_cached_hub_weights_offline(offline_hub, tmp_path, imagefolder_split):
    torch.manual_seed(0)
    source = timm.create_model("resnet18", pretrained=False)
    put_in_hub_cache(offline_hub, "timm/resnet18.a1_in1k", source.state_dict())
    spec = ModelSpec.from_config("r18", {"timm": "resnet18.a1_in1k", "imagenet_top1": 71.5})
    full = spec.with_preprocessing()
    assert (full.resolution, full.crop_pct, full.interpolation) == (224, 0.95, "bicubic")  # the tag's own config
    model = build_model(spec, num_classes=0)
    assert torch.equal(model.conv1.weight, source.conv1.weight) and model.num_features == 512
    small = ModelSpec.from_config("r18", {"timm": "resnet18.a1_in1k", "imagenet_top1": 71.5, "resolution": 32})
    dataset, split, split_path = imagefolder_split
    extract_to_hdf5(small, dataset, split_path, tmp_path / "f.h5")
    assert load_features(tmp_path / "f.h5")["train"][0].shape == (split.sizes()["train"], 512)


def test_missing_hub_weights_offline_say_what_to_do(offline_hub):
    spec = ModelSpec.from_config("r18", {"timm": "resnet18.a1_in1k", "imagenet_top1": 71.5})
    with pytest.raises(RuntimeError, match=r"could not load hub weights 'resnet18.a1_in1k'.*prefetch"):
        build_model(spec, num_classes=0)
