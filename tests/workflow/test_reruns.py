"""Incremental reruns: Snakemake redoes only what a change touches (outputs, params, inputs are its triggers)."""

import os
import re
import shutil

import h5py
import pytest
import timm
import torch
import yaml

from tests.conftest import NARROW_RESNET
from transferbench.models.spec import ModelSpec, build_model, import_model_modules

from .conftest import TINY, snakemake

pytestmark = pytest.mark.workflow
AGGREGATES = {"collect_results", "results_latex", "compute_statistics", "fig2_correlation", "fig_per_dataset",
              "fig_modes_per_dataset", "fig_finetune_vs_scratch", "fig_dataset_size", "all"}


def test_complete_run_leaves_nothing_to_do(tiny_run):
    out = snakemake(tiny_run, "-n", "--cores", "2")
    assert "Nothing to be done" in out.stdout + out.stderr


def dry_run_jobs(workdir):
    """(rule, wildcards dict) of every job a dry run would execute."""
    out = snakemake(workdir, "-n", "--cores", "2").stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if match:
            wc = re.search(r"wildcards: (.*)", block)
            wildcards = dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}
            jobs.append((match.group(1), wildcards))
    return jobs


def test_adding_a_model_reruns_only_its_jobs_and_the_aggregates(tiny_run, tmp_path):
    workdir = tmp_path / "added"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load(TINY.read_text())
    config["models"]["medium"] = {"timm": "tb_democnn", "kwargs": {"width": 6, "depth": 1}, "pretrained": "upstream",
                                  "resolution": 16}
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(workdir)
    assert jobs, "the dry run listed no job"
    others = [(rule, wc) for rule, wc in jobs if rule not in AGGREGATES and wc.get("model") != "medium"]
    assert others == []
    rules = {rule for rule, _ in jobs}
    assert {"pretrain_upstream", "extract_features", "fit_linear_probe", "train_grid_point", "train_final"} <= rules
    assert {"collect_results", "compute_statistics", "fig2_correlation"} <= rules


def test_reordering_config_keys_reruns_nothing(tiny_run, tmp_path):
    def reverse(value):
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        return value

    workdir = tmp_path / "reordered"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = reverse(yaml.safe_load(TINY.read_text()))
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(workdir, "-n", "--cores", "2")
    assert "Nothing to be done" in out.stdout + out.stderr


def changed_copy(tiny_run, workdir, change):
    """A copy of the complete tiny run whose config has been edited by `change(config)`."""
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = yaml.safe_load(TINY.read_text())
    change(config)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def test_changing_one_datasets_grid_reruns_only_its_new_training_jobs(tiny_run, tmp_path):
    def widen_marks_finetune_grid(config):
        config["datasets"]["marks"]["finetune"] = {"grid": {"lr": [0.01, 0.05, 0.02], "weight_decay": [1.0e-5]}}

    jobs = dry_run_jobs(changed_copy(tiny_run, tmp_path / "grid", widen_marks_finetune_grid))
    training = sorted((rule, wc.get("model"), wc.get("point")) for rule, wc in jobs
                      if rule not in AGGREGATES)
    # the new point per model, the selections that now see it and the final fits they feed; the points that
    # stay are not rerun (the grid is not part of a run's params)
    assert all(wc.get("dataset") == "marks" and wc.get("mode") == "finetune" for rule, wc in jobs
               if rule not in AGGREGATES)
    assert training == sorted([("train_grid_point", m, "lr0.02_wd1e-05") for m in ("small", "large")]
                              + [(rule, m, None) for rule in ("select_grid_point", "train_final")
                                 for m in ("small", "large")])


def test_failing_job_names_its_log_and_the_others_go_on(tiny_run, tmp_path):
    def add_models(config):
        config["modes"] = ["linear"]
        config["models"]["broken"] = {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                      "checkpoint": "broken.pth", "imagenet_top1": 50.0, "resolution": 16}
        config["models"]["medium"] = {"timm": "tb_democnn", "kwargs": {"width": 6, "depth": 1},
                                      "pretrained": "upstream", "resolution": 16}

    workdir = changed_copy(tiny_run, tmp_path / "failing", add_models)
    (workdir / "broken.pth").write_bytes(b"not a checkpoint")
    proc = snakemake(workdir, "--cores", "2", check=False)  # keep-going is the default (profiles/default)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    log = "logs/extract_features/broken/digits.log"
    assert re.search(rf"Error in rule extract_features:.*?log: {re.escape(log)}", out, re.S), out[-4000:]
    assert "checkpoint broken.pth could not be read" in (workdir / log).read_text()
    # the end of the output lists every failure with its error and log file
    summary = out[out.index("transferbench: 2 job(s) failed"):]
    for dataset in ("digits", "marks"):
        assert f"extract_features -> results/features/broken/{dataset}.h5" in summary
        assert f"log: logs/extract_features/broken/{dataset}.log" in summary
    assert summary.count("ValueError: checkpoint broken.pth could not be read") == 2
    for dataset in ("digits", "marks"):  # the other new model's jobs went on
        assert (workdir / f"results/linear/medium/{dataset}.json").exists()


def test_features_made_for_another_model_are_recomputed_even_without_snakemake_metadata(tiny_run, tmp_path):
    workdir = tmp_path / "stale"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    shutil.rmtree(workdir / ".snakemake")  # no params or code records: only mtimes and the files themselves
    features = workdir / "results/features"
    shutil.copy2(features / "large/digits.h5", features / "small/digits.h5")  # the wrong model's features
    with open(features / "small/marks.h5", "r+b") as f:  # a truncated file
        f.truncate(1000)
    looked = snakemake(workdir, "-n", "--cores", "2")  # names them, changes nothing
    for dataset in ("digits", "marks"):
        assert f"results/features/small/{dataset}.h5 was made for something else" in looked.stderr
    snakemake(workdir, "--cores", "2", "results/features/small/digits.h5", "results/features/small/marks.h5")
    for dataset in ("digits", "marks"):
        with h5py.File(features / f"small/{dataset}.h5") as h5:
            assert h5.attrs["model"] == "small" and h5.attrs["complete"]


def file_states(workdir) -> dict:
    """(size, mtime) of every file of the study outside Snakemake's own .snakemake folder."""
    return {p.relative_to(workdir): (p.stat().st_size, p.stat().st_mtime_ns) for p in workdir.rglob("*")
            if p.is_file() and ".snakemake" not in p.relative_to(workdir).parts}


def test_a_changed_preprocessing_reruns_the_models_jobs_only_and_looking_changes_no_file(tmp_path):
    """A model whose resolved preprocessing changes while its config entry does not (a timm release changing a
    pretrained config's mean/std; here the researcher's module, its file time kept) reruns its extraction, fine-tune
    and scratch jobs and what depends on them, nothing of the other model. Dry runs, --lint and --list-changes,
    even with a stale features file in the study, change no file (a real run marks it out of date)."""
    workdir = tmp_path / "preprocessing"
    (workdir / "config").mkdir(parents=True)
    (workdir / "my_models.py").write_text(NARROW_RESNET)
    if "tb_test_resnet_narrow" not in timm.list_models():  # the unit tests may have registered it in this process
        import_model_modules([workdir / "my_models.py"])
    torch.manual_seed(0)
    for name, arch, kwargs in (("narrow", "tb_test_resnet_narrow", {}),
                               ("cnn", "tb_democnn", {"width": 4, "depth": 1})):
        model = build_model(ModelSpec("m", arch, "checkpoint", kwargs=kwargs), num_classes=10, weights=False)
        torch.save(model.state_dict(), workdir / f"{name}.pth")
    config = yaml.safe_load(TINY.read_text())
    config.update(model_modules=["my_models.py"], datasets={"digits": config["datasets"]["digits"]}, models={
        "narrow": {"timm": "tb_test_resnet_narrow", "checkpoint": "narrow.pth", "imagenet_top1": 30.0,
                   "resolution": 16},
        "cnn": {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1}, "checkpoint": "cnn.pth",
                "imagenet_top1": 40.0, "resolution": 16}})
    del config["upstream"]
    config["modes"] = ["linear", "finetune"]  # (scratch reads the preprocessing as finetune does)
    config["finetune"]["grid"]["lr"] = config["finetune"]["grid"]["lr"][:1]
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--cores", "2")

    stamp = (workdir / "my_models.py").stat()
    (workdir / "my_models.py").write_text(NARROW_RESNET.replace('"mean": (0.5, 0.5, 0.5)', '"mean": (0.4, 0.5, 0.6)'))
    os.utime(workdir / "my_models.py", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # only the resolved spec differs
    jobs = dry_run_jobs(workdir)
    assert {wc.get("model") for rule, wc in jobs if rule not in AGGREGATES} == {"narrow"}
    assert {rule for rule, _ in jobs} - AGGREGATES == {
        "extract_features", "train_final",  # the jobs that read the preprocessing (a one-point grid: no grid job)
        "fit_linear_probe"}  # and those that read their outputs (the one-point selection reads none)

    features = workdir / "results/features"
    shutil.copy2(features / "cnn/digits.h5", features / "narrow/digits.h5")  # stale: made for another model
    before = file_states(workdir)
    for args in (["--lint"], ["--list-changes", "params"], ["--list-changes", "input"], ["-n", "--cores", "2"]):
        looked = snakemake(workdir, *args, check=args[0] != "--lint")
    assert "results/features/narrow/digits.h5 was made for something else" in looked.stderr
    assert file_states(workdir) == before
