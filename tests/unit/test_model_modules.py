"""Models from the researcher's own Python files (config key model_modules), registered with timm."""

import pytest
import torch

from tests.conftest import NARROW_RESNET
from transferbench.features.extract import extract_to_hdf5
from transferbench.features.store import load_features
from transferbench.models.spec import ModelSpec, build_model, import_model_modules

pytestmark = pytest.mark.unit


def test_registered_architecture_extracts_features_from_its_checkpoint(tmp_path, imagefolder_split):
    module = tmp_path / "my_models.py"
    module.write_text(NARROW_RESNET)
    import_model_modules([module])
    import_model_modules([module])  # importing twice (every job does it) is harmless
    source = build_model(ModelSpec("src", "tb_test_resnet_narrow", "checkpoint"), num_classes=10, weights=False)
    checkpoint = tmp_path / "narrow.pth"
    torch.save(source.state_dict(), checkpoint)
    spec = ModelSpec.from_config("narrow", {"timm": "tb_test_resnet_narrow", "checkpoint": str(checkpoint),
                                            "imagenet_top1": 40.0})
    dataset, split, split_path = imagefolder_split
    extract_to_hdf5(spec, dataset, split_path, tmp_path / "f.h5")
    features = load_features(tmp_path / "f.h5")
    assert features["train"][0].shape == (split.sizes()["train"], 128)
    model = build_model(spec, num_classes=0)
    assert torch.equal(model.layer1[0].conv1.weight, source.layer1[0].conv1.weight)  # the checkpoint's weights


def test_missing_or_broken_module_names_the_key_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_modules.*nowhere.py"):
        import_model_modules([tmp_path / "nowhere.py"])
    broken = tmp_path / "broken_models.py"
    broken.write_text("raise RuntimeError('typo in my model file')\n")
    with pytest.raises(ImportError, match="broken_models.py.*typo in my model file"):
        import_model_modules([broken])
