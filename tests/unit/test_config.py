import copy
from pathlib import Path

import pytest

from transferbench.checks import missing_data, validate_config
from transferbench.config import ConfigError, grid_points, linear_grid, load_config, training_settings

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
    with pytest.raises(ConfigError,
                       match=r"modes\.1.*valid choices: linear, knn, finetune, scratch.*did you mean 'scratch'"):
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


def test_missing_data_names_each_path_the_config_gives(demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "have/train").mkdir(parents=True)  # an imagefolder root without test/
    (tmp_path / "data/dtd").mkdir(parents=True)
    demo["models"]["mine"] = {"timm": "tb_democnn", "checkpoint": "ckpt/mine.pth", "imagenet_top1": 50.0}
    demo["datasets"].update({
        "folder": {"source": "imagefolder", "root": "have", "metric": "top1"},
        "listed": {"source": "csv", "root": "nowhere", "split_file": "split.csv", "metric": "top1"},
        "pets": {"source": "oxford_pets"}, "textures": {"source": "dtd"}})
    own, paper = missing_data(validate_config(demo, cross_references=False))
    assert own == [
        "config key 'models.mine.checkpoint': ckpt/mine.pth is not a file (paths are relative to the working "
        "directory)",
        "config key 'datasets.folder.root': have/test not found; expected have/train/<class>/<image>, "
        "have/test/<class>/<image> (val/ optional)",
        "config key 'datasets.listed.root': nowhere is not a folder (the folder the split file's paths are "
        "relative to)",
        "config key 'datasets.listed.split_file': split.csv is not a file; expected a CSV with a header row "
        "path,label,split"]
    assert len(paper) == 1 and paper[0].startswith("config key 'datasets.pets': Oxford-IIIT Pets is not under data "
                                                   "(data/oxford-iiit-pet is missing)")
    assert "snakemake --cores 1 prefetch" in paper[0]  # generated, bundled and upstream data are never listed


def test_a_tag_may_not_take_a_results_table_column(demo):
    demo["models"]["cnn_w4_d1"]["tags"] = {"value": "x", "setting": "C1"}
    with pytest.raises(ConfigError, match=r"models\.cnn_w4_d1\.tags': value would overwrite"):
        validate_config(demo)


def test_feature_space_needs_a_probe_mode_and_names_of_the_study(demo):
    demo["modes"] = ["finetune"]
    demo["feature_space"] = {"enabled": True, "tsne": {"models": ["nope"], "dataset": "digits"}}
    with pytest.raises(ConfigError, match=r"(?s)add mode linear or knn.*tsne\.models': 'nope' is not a model"):
        validate_config(demo)


def test_tsne_needs_a_single_label_dataset(demo):
    demo["datasets"] = {"voc": {"source": "voc2007"}}
    demo["feature_space"] = {"enabled": True}
    with pytest.raises(ConfigError, match="every dataset of the study is multi-label"):
        validate_config(demo)
