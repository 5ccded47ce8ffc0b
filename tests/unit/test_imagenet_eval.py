"""ImageNet top-1 measured on a val folder (<wnid>/<image>): sorted wnids are the head's class indices, the
model's own head is kept, and a head of the wrong width is refused."""

import json
import textwrap

import pytest
import timm
import torch

from tests.conftest import write_imagefolder
from transferbench.features.extract import extract_to_hdf5
from transferbench.features.store import load_features
from transferbench.models.imagenet_top1 import imagenet_val_samples, measure_imagenet_top1
from transferbench.models.spec import ModelSpec, import_model_modules

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
    with pytest.raises(ValueError, match=r"has 5 ImageNet classes \(label_offset 0\), .* has 3 class folders"):
        measure_imagenet_top1(checkpoint_predicting(tmp_path, 0, num_classes=5), val_folder, tmp_path / "t.json")
    with pytest.raises(FileNotFoundError, match="imagenet_val.*not a folder"):
        imagenet_val_samples(tmp_path / "nowhere")


# A researcher's module registering a MobileNet v1 width timm does not ship by calling timm's generator directly:
# no pretrained config is registered, so the model's config has classifier None.
MOBILENET_025 = textwrap.dedent('''
    from timm.models import register_model
    from timm.models.efficientnet import _gen_mobilenet_v1

    @register_model
    def tb_test_mobilenetv1_025(pretrained=False, **kwargs):
        return _gen_mobilenet_v1("tb_test_mobilenetv1_025", 0.25, pretrained=pretrained, **kwargs)
''')


def test_model_without_pretrained_cfg_loads_a_1001_way_checkpoint_for_features_and_top1(
        tmp_path, val_folder, imagefolder_split):
    module = tmp_path / "my_mobilenets.py"
    module.write_text(MOBILENET_025)
    import_model_modules([module])
    source = timm.create_model("tb_test_mobilenetv1_025", num_classes=1 + len(WNIDS))  # background output first
    assert source.pretrained_cfg.get("classifier") is None
    with torch.no_grad():
        source.classifier.weight.zero_()
        source.classifier.bias.copy_(torch.tensor([20.0, 0.0, 10.0, 0.0]))  # background wins, then class 1
    checkpoint = tmp_path / "mnv1_025.pth"
    torch.save(source.state_dict(), checkpoint)
    entry = {"timm": "tb_test_mobilenetv1_025", "checkpoint": str(checkpoint), "imagenet_top1": 40.0,
             "resolution": 32}

    # features: the backbone's weights load (the classifier is found from the model) and extraction runs
    dataset, split, split_path = imagefolder_split
    extract_to_hdf5(ModelSpec.from_config("mnv1", entry), dataset, split_path, tmp_path / "f.h5")
    assert load_features(tmp_path / "f.h5")["train"][0].shape == (split.sizes()["train"], source.num_features)

    # measured top-1: the checkpoint's 1,001-style head, its background output dropped by label_offset
    with pytest.raises(ValueError, match="set models.mnv1.label_offset: 1"):
        measure_imagenet_top1(ModelSpec.from_config("mnv1", entry), val_folder, tmp_path / "t.json")
    result = measure_imagenet_top1(ModelSpec.from_config("mnv1", {**entry, "label_offset": 1}), val_folder,
                                   tmp_path / "t.json")
    assert result["top1"] == pytest.approx(100 * 2 / 12)  # always class 1 (n01443537: 2 of 12 images)
