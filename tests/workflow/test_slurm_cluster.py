"""The cluster path on a real SLURM (slurm_cluster.sh): the repository's profile through
snakemake-executor-plugin-slurm gives the same results as a local run, and a training job killed with `scancel`
is retried by Snakemake and resumes from its checkpoint."""

import json
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import ROOT, TINY, slurm_test_profile, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]


def write_study(path, **changes):
    """The tiny study with `changes` applied to its top-level keys."""
    config = {**yaml.safe_load(TINY.read_text()), **changes}
    (path / "config").mkdir(parents=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def slurm_command(workdir, profile, *targets):
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
            "--profile", str(profile), *targets]


def small_study(path):
    # One model, one dataset, two modes: every rule kind (generation, pretraining, extraction, probe, grid, the
    # grouped selections, final fits, the grouped aggregates) with few SLURM jobs (each starts Snakemake and torch).
    config = yaml.safe_load(TINY.read_text())
    return write_study(path, modes=["linear", "finetune"], models={"small": config["models"]["small"]},
                       datasets={"digits": config["datasets"]["digits"]})


def test_scancel_of_a_training_job_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    long_run = {**config["finetune"], "grid": {"lr": [0.01], "weight_decay": [1.0e-5]}, "steps": 600,
                "checkpoint_every": 25}
    study = dict(models={"small": config["models"]["small"]}, modes=["finetune"],
                 datasets={"digits": config["datasets"]["digits"]}, finetune=long_run)
    target = "results/finetune/small/digits/grid/lr0.01_wd1e-05.json"
    checkpoint = "results/finetune/small/digits/grid/lr0.01_wd1e-05.ckpt"

    local = write_study(tmp_path / "local", **study)
    snakemake(local, "--cores", "2", target)

    cluster = write_study(tmp_path / "cluster", **study)
    output = tmp_path / "snakemake.out"
    with open(output, "w") as out:
        proc = subprocess.Popen(slurm_command(cluster, slurm_test_profile(tmp_path / "profile"), target),
                                stdout=out, stderr=subprocess.STDOUT, text=True)
        jobid = wait_for_training_job(proc, output, cluster / checkpoint)
        subprocess.run(["scancel", jobid], check=True)
        assert proc.wait(timeout=600) == 0, output.read_text()[-6000:]
    text = output.read_text()
    assert f"SLURM-job '{jobid}' failed" in text  # Snakemake saw the kill and retried the job (profile: retries)
    killed_log = next((cluster / ".snakemake" / "slurm_logs").rglob(f"{jobid}.log")).read_text()
    assert "SIGTERM received" in killed_log
    rule_log = (cluster / "logs/train_grid_point/finetune/small/digits/lr0.01_wd1e-05.log").read_text()
    resumed = re.search(r"resumed from \S+ at step (\d+) of 600", rule_log)
    assert resumed and 0 < int(resumed.group(1)) < 600, rule_log
    assert not (cluster / checkpoint).exists()  # a finished job cleans up
    ours, reference = (json.loads((d / target).read_text()) for d in (cluster, local))
    assert ours["value"] == reference["value"] and ours["steps"] == reference["steps"] == 600
    assert [p["metric"] for p in ours["curve"]] == [p["metric"] for p in reference["curve"]]


def test_slurm_run_equals_local_run(slurm_cluster, tiny_run, tmp_path):
    """The small study on SLURM gives, row for row and prediction for prediction, what the local run of the tiny
    study (a superset: every job depends only on its own inputs and seed) gave for those models, dataset and modes."""
    cluster = small_study(tmp_path / "cluster")
    profile = slurm_test_profile(tmp_path / "profile")
    proc = subprocess.run(slurm_command(cluster, profile), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "has been submitted with SLURM jobid" in out
    assert "Group job selection" in out and "Group job analysis" in out  # the profile's grouping of small jobs
    ours = pd.read_csv(cluster / "results/tables/results.csv")
    local = pd.read_csv(tiny_run / "results/tables/results.csv")
    local = local[(local.model == "small") & (local.dataset == "digits") & local["mode"].isin(["linear", "finetune"])]
    key = ["model", "dataset", "mode"]
    assert len(ours) == 2
    pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),  # a whole top-1 reads as int alone
                                  local.sort_values(key).reset_index(drop=True), check_dtype=False)
    for predictions in ours["predictions"]:  # .npz: compared array by array (the zip records write times)
        with np.load(cluster / predictions) as a, np.load(tiny_run / predictions) as b:
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files), predictions
    again = subprocess.run(slurm_command(cluster, profile), capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def wait_for_training_job(proc, output, checkpoint, timeout=300):
    """The SLURM job id of the running training job, once it has written its first checkpoint."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"Snakemake ended before the job could be killed:\n{output.read_text()[-4000:]}"
        found = re.search(r"SLURM jobid (\d+) \(log: \S*rule_train_grid_point", output.read_text())
        if found and checkpoint.exists():
            return found.group(1)
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no checkpoint from the training job after {timeout} s:\n{output.read_text()[-4000:]}")
