"""Bring your own: a model architecture from the researcher's own Python file (config key model_modules) with
checkpoints the test writes, and a dataset given as one folder of images plus a CSV split file, run end to end by
configuration alone."""

import pandas as pd
import pytest
import timm
import torch
import yaml

from tests.conftest import NARROW_RESNET, write_csv_dataset
from transferbench.models.spec import ModelSpec, build_model, import_model_modules

from .conftest import snakemake

pytestmark = pytest.mark.workflow


def test_own_architecture_and_csv_dataset_run_end_to_end(tmp_path):
    workdir = tmp_path / "study"
    (workdir / "config").mkdir(parents=True)
    (workdir / "my_models.py").write_text(NARROW_RESNET)
    if "tb_test_resnet_narrow" not in timm.list_models():  # the unit tests may have registered it in this process
        import_model_modules([workdir / "my_models.py"])
    models = {}
    for seed, top1 in ((0, 41.0), (1, 47.5)):
        torch.manual_seed(seed)
        model = build_model(ModelSpec("m", "tb_test_resnet_narrow", "checkpoint"), num_classes=10, weights=False)
        torch.save({"state_dict": model.state_dict()}, workdir / f"narrow{seed}.pth")  # timm unwraps 'state_dict'
        models[f"narrow{seed}"] = {"timm": "tb_test_resnet_narrow", "checkpoint": f"narrow{seed}.pth",
                                   "imagenet_top1": top1}
    dataset = write_csv_dataset(workdir / "data")
    config = {"modes": ["linear"], "model_modules": ["my_models.py"], "models": models,
              "datasets": {"mine": {"source": "csv", "root": dataset.root, "split_file": dataset.split_file,
                                    "metric": "mean_per_class"}},
              "linear": {"num": 5, "wd_min": 1.0e-2, "wd_max": 1.0e+2}}
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--cores", "2")
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert sorted(table["model"]) == ["narrow0", "narrow1"] and set(table["metric"]) == {"mean_per_class"}
    assert table["n_train"].tolist() == [24, 24] and table["value"].between(0, 1).all()

    config["model_modules"] = []  # without the module the architecture is unknown: stopped before any job
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--cores", "2", check=False)
    assert proc.returncode != 0 and "unknown timm architecture 'tb_test_resnet_narrow'" in proc.stdout + proc.stderr
