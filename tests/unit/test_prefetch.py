"""Prefetch: Birdsnap's images from its official list (MD5-checked, failures recorded, resumable), what is
already in place is left alone, and offline jobs name the missing weights file and the prefetch command."""

import hashlib

import pytest
import torch

from tests.paper_trees import write_dtd
from transferbench.models.spec import ModelSpec, build_model
from transferbench.prefetch import fetch_birdsnap_images, fetch_dataset, fetch_model

pytestmark = pytest.mark.unit


def test_birdsnap_images_are_fetched_checked_and_failures_recorded(tmp_path):
    served = tmp_path / "server"
    served.mkdir()
    good, changed = b"\xff\xd8 a jpeg", b"\xff\xd8 another"
    (served / "good.jpg").write_bytes(good)
    (served / "changed.jpg").write_bytes(changed)
    base = tmp_path / "birdsnap"
    base.mkdir()
    rows = [("good.jpg", "Blue_Jay/0001.jpg", hashlib.md5(good).hexdigest()),
            ("changed.jpg", "Blue_Jay/0002.jpg", hashlib.md5(b"what the list expects").hexdigest()),
            ("gone.jpg", "Blue_Jay/0003.jpg", "0" * 32)]
    (base / "images.txt").write_text("url\tmd5\tpath\tspecies_id\n" + "".join(
        f"{(served / name).as_uri()}\t{md5}\t{path}\t1\n" for name, path, md5 in rows))
    assert fetch_birdsnap_images(base, workers=2) == 2
    assert (base / "download/images/Blue_Jay/0001.jpg").read_bytes() == good
    assert not (base / "download/images/Blue_Jay/0002.jpg").exists()  # another file than the list's: refused
    failed = (base / "download/failed.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == ["Blue_Jay/0002.jpg", "Blue_Jay/0003.jpg"]
    assert "md5 mismatch" in failed[0] and "URLError" in failed[1]
    (served / "good.jpg").unlink()  # a second run fetches only what is missing
    assert fetch_birdsnap_images(base, workers=2) == 2


def test_present_dataset_and_local_checkpoint_are_left_alone(tmp_path):
    write_dtd(tmp_path / "data")
    assert fetch_dataset("dtd", tmp_path / "data") == f"dtd: present under {tmp_path / 'data'}"
    with pytest.raises(FileNotFoundError, match="by hand"):
        fetch_dataset("stanford_cars", tmp_path / "data")
    spec = ModelSpec.from_config("mine", {"timm": "resnet18", "checkpoint": str(tmp_path / "none.pth")})
    with pytest.raises(FileNotFoundError, match="none.pth does not exist"):
        fetch_model(spec)


def test_offline_torchvision_weights_name_the_file_and_the_prefetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    spec = ModelSpec.from_config("r18", {"torchvision": "resnet18.IMAGENET1K_V1", "imagenet_top1": 69.8})
    with pytest.raises(FileNotFoundError) as error:
        build_model(spec, num_classes=0)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "snakemake --cores 1 prefetch" in message
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"  # what a prefetch leaves
    cached.parent.mkdir(parents=True)
    source = build_model(ModelSpec.from_config("r", {"torchvision": "resnet18"}), num_classes=1000, weights=False)
    torch.save(source.state_dict(), cached)
    assert fetch_model(spec) == f"r18: torchvision weights already in {cached}"
    model = build_model(spec, num_classes=0)  # loads from the cache, offline (no hash check on cached files)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
