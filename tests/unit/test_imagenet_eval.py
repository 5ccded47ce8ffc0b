"""ImageNet top-1 measured on a val folder (<wnid>/<image>): sorted wnids are the head's class indices, the
model's own head is kept, and a head of the wrong width is refused."""

import json

import pytest
import timm
import torch

from tests.conftest import write_imagefolder
from transferbench.imagenet_eval import imagenet_val_samples, measure_imagenet_top1
from transferbench.models import ModelSpec

pytestmark = pytest.mark.unit
WNIDS = ("n01440764", "n01443537", "n01484850")


def checkpoint_predicting(tmp_path, k, num_classes=3):
    """A demo CNN checkpoint whose head always answers class k (zero weights, a bias that picks k)."""
    model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=num_classes)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(k), num_classes).float() * 10)
    path = tmp_path / f"predicts{k}.pth"
    torch.save({"state_dict": model.state_dict()}, path)
    return ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                         "checkpoint": str(path)})


@pytest.fixture
def val_folder(tmp_path):
    root = write_imagefolder(tmp_path / "in", classes=WNIDS, per_class=(0, 0), val_per_class=4)
    for wnid, n in zip(WNIDS, (4, 2, 6)):  # unbalanced: 4, 2 and 6 images
        for extra in sorted((root / "val" / wnid).iterdir())[n:]:
            extra.unlink()
        for i in range(4, n):
            (root / "val" / wnid / f"{i:03d}.jpg").write_bytes((root / "val" / wnid / "000.jpg").read_bytes())
    return root / "val"


def test_val_samples_index_classes_by_sorted_wnid(val_folder):
    ids, labels, classes = imagenet_val_samples(val_folder)
    assert classes == list(WNIDS) and len(ids) == 12
    assert labels.tolist() == [0] * 4 + [1] * 2 + [2] * 6 and ids[4].startswith("n01443537/")


@pytest.mark.parametrize("k, expected", [(0, 4 / 12), (1, 2 / 12), (2, 6 / 12)])
def test_top1_is_the_share_of_images_of_the_class_the_head_answers(tmp_path, val_folder, k, expected):
    result = measure_imagenet_top1(checkpoint_predicting(tmp_path, k), val_folder, tmp_path / "top1.json",
                                   batch_size=5)
    assert result["top1"] == pytest.approx(100 * expected)
    assert json.loads((tmp_path / "top1.json").read_text())["n"] == 12


def test_head_of_the_wrong_width_is_refused(tmp_path, val_folder):
    with pytest.raises(ValueError, match="has 5 ImageNet classes, .* has 3 class folders"):
        measure_imagenet_top1(checkpoint_predicting(tmp_path, 0, num_classes=5), val_folder, tmp_path / "t.json")
    with pytest.raises(FileNotFoundError, match="imagenet_val.*not a folder"):
        imagenet_val_samples(tmp_path / "nowhere")
