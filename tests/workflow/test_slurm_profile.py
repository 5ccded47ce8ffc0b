"""The cluster profile: Snakemake accepts it and plans the study with its resources (no SLURM needed to plan)."""

import pytest

from .conftest import ROOT, snakemake, study_dir

pytestmark = pytest.mark.workflow


def test_slurm_profile_plans_jobs_with_gpu_for_heavy_rules(tmp_path):
    workdir = study_dir(tmp_path / "study")
    out = snakemake(workdir, "--profile", str(ROOT / "profiles" / "slurm"), "-n", "-j", "64").stdout
    assert "train_grid_point" in out and "extract_features" in out
    blocks = {b.split(":", 1)[0].strip(): b for b in out.split("\nrule ")[1:]}
    assert "gpu=1" in blocks["extract_features"] and "gpu=1" in blocks["train_final"]
    assert "gpu=" not in blocks["make_split"]
