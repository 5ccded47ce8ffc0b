"""Workflow fixtures: the repository's Snakefile run for real on a tiny config, in a temporary working directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.yaml")


def snakemake(workdir, *args, check=True):
    """Run the repository's workflow in `workdir` (its config/config.yaml is the study); return the process."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def study_dir(path, config=TINY):
    (path / "config").mkdir(parents=True)
    shutil.copy(config, path / "config" / "config.yaml")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A complete run of the tiny study (shared by the tests that only read it)."""
    workdir = study_dir(tmp_path_factory.mktemp("tiny"))
    snakemake(workdir, "--cores", "2")
    return workdir
