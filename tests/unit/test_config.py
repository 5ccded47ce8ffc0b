import copy
from pathlib import Path

import pytest

from transferbench.config import ConfigError, grid_points, linear_grid, load_config, training_settings, validate_config

pytestmark = pytest.mark.unit
DEMO = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


@pytest.fixture
def demo():
    return load_config(DEMO)


def test_demo_config_is_valid_and_gets_defaults(demo):
    config = validate_config(demo)
    assert config["linear"]["max_iter"] == 1000
    assert config["datasets"]["digits"]["val_fraction"] == 0.2


def test_unknown_mode_names_key_and_choices(demo):
    demo["modes"] = ["linear", "scrach"]
    with pytest.raises(ConfigError, match=r"modes\.1.*valid choices: linear, finetune, scratch.*did you mean 'scratch'"):
        validate_config(demo)


def test_unknown_timm_architecture_suggests_nearest(demo):
    demo["models"]["cnn_w4_d1"]["timm"] = "resnet5O.tv_in1k"
    with pytest.raises(ConfigError, match=r"models\.cnn_w4_d1.*unknown timm architecture 'resnet5O'.*'resnet50'"):
        validate_config(demo)


def test_cluster_jobs_skip_only_the_registry_checks(demo):
    demo["models"]["cnn_w4_d1"]["timm"] = "resnet5O.tv_in1k"
    assert validate_config(copy.deepcopy(demo), cross_references=False)["linear"]["max_iter"] == 1000  # defaults filled
    demo["modes"] = ["scrach"]
    with pytest.raises(ConfigError, match="scrach"):  # the schema is still checked
        validate_config(demo, cross_references=False)


def test_hub_model_without_tag_is_rejected_with_available_tags(demo):
    demo["models"]["r50"] = {"timm": "resnet50", "imagenet_top1": 76.1}
    with pytest.raises(ConfigError, match=r"no pretrained tag.*resnet50\.tv_in1k"):
        validate_config(demo)


def test_unknown_dataset_source_and_misspelled_key(demo):
    demo["datasets"]["digits"]["source"] = "sklearn_digit"
    demo["datasets"]["marks"]["metrc"] = "top1"
    with pytest.raises(ConfigError) as error:
        validate_config(demo)
    message = str(error.value)
    assert "datasets.digits.source" in message and "did you mean 'sklearn_digits'" in message
    assert "unknown key(s) 'metrc'" in message and "did you mean 'metric'" in message


def test_malformed_grid_value(demo):
    demo["finetune"]["grid"]["lr"] = [0.01, -1]
    with pytest.raises(ConfigError, match=r"finetune\.grid\.lr\.1"):
        validate_config(demo)


def test_imagefolder_needs_root(demo):
    demo["datasets"]["mine"] = {"source": "imagefolder", "metric": "top1"}
    with pytest.raises(ConfigError, match=r"datasets\.mine\.root.*train/ and test/"):
        validate_config(demo)


def test_paper_defaults_and_dataset_override(demo):
    config = validate_config(copy.deepcopy(demo))
    config["datasets"]["marks"]["finetune"] = {"grid": {"lr": [0.5]}}
    assert training_settings(config, "finetune", "marks")["grid"]["lr"] == [0.5]
    assert training_settings(config, "finetune", "digits")["grid"]["lr"] == [0.01, 0.03]
    assert training_settings(config, "finetune", "digits")["momentum"] == 0.9  # paper default
    assert set(grid_points(config, "finetune", "digits")) == {"lr0.01_wd1e-05", "lr0.03_wd1e-05"}


def test_paper_linear_grid_is_45_log_spaced_values():
    grid = linear_grid({"linear": {"wd_min": 1e-6, "wd_max": 1e5, "num": 45}})
    assert len(grid) == 45 and grid[0] == pytest.approx(1e-6) and grid[-1] == pytest.approx(1e5)


def test_torchvision_entries_are_checked_against_torchvision(demo):
    demo["models"]["tv_r50"] = {"torchvision": "resnet50.IMAGENET1K_V2", "imagenet_top1": 80.9}
    validate_config(copy.deepcopy(demo))
    demo["models"]["tv_r50"]["torchvision"] = "resnet50.IMAGENET1K_V9"
    with pytest.raises(ConfigError, match=r"models\.tv_r50.*unknown weights 'IMAGENET1K_V9'.*IMAGENET1K_V2"):
        validate_config(demo)
