"""Workflow fixtures: the repository's Snakefile run for real on a tiny config, in a temporary working directory."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.yaml")


def snakemake(workdir, *args, check=True, env=None):
    """Run the repository's workflow in `workdir` (its config/config.yaml is the study); return the process.
    `env`: variables set on top of this process's environment."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def run_with_configfile(workdir, config: dict, name: str, *args, check=True):
    """Write `config` as `workdir`/config/`name` and run the workflow on it through --configfile, as the README runs
    a demo; `args` (options, targets) come before --configfile, which takes every word after it. The path is
    absolute: Snakemake resolves --configfile against the directory it starts in, not -d."""
    path = Path(workdir) / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return snakemake(workdir, *args, "--configfile", path, check=check)


def planned_jobs(dry_run_stdout: str) -> list[tuple[str, dict]]:
    """(rule, {wildcard: value}) of every job a dry run lists, in its order."""
    planned = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_stdout):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if match:
            wc = re.search(r"wildcards: (.*)", block)
            planned.append((match.group(1), dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}))
    return planned


def copy_checkout(dest: Path) -> Path:
    """A fresh clone of this checkout at `dest`: the files git tracks plus the untracked ones it does not ignore (what
    a commit of the working tree holds), nothing else (no results/, .snakemake/ or build outputs)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def study_dir(path, config=TINY):
    (path / "config").mkdir(parents=True)
    shutil.copy(config, path / "config" / "config.yaml")
    return path


@contextmanager
def made_once(tmp_path_factory, worker_id, name):
    """(folder, done): a folder shared by every worker of this pytest session (pytest-xdist), under a lock; `done`
    is False only for the first to ask, which makes the folder's contents while the others wait for them."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # pytest-N/ holds each worker's popen-gwK/
    folder, marker = shared / name, shared / f"{name}.done"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if making it fails
        done = marker.exists()
        if not done:
            shutil.rmtree(folder, ignore_errors=True)  # a first attempt that failed
        yield folder, done
        marker.touch()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    """A complete run of the tiny study, made once per pytest session however many workers ask (the tests that
    use it read it or copy it)."""
    with made_once(tmp_path_factory, worker_id, "tiny_run") as (workdir, done):
        if not done:
            study_dir(workdir)
            snakemake(workdir, "--cores", "2")
    return workdir


def run_slurm_cluster(action):
    script = Path(__file__).with_name("slurm_cluster.sh")
    return subprocess.run(["bash", str(script), action], capture_output=True, text=True)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM on localhost (slurm_cluster.sh installs and starts it); skips, with the reason,
    only where SLURM cannot be installed or started here."""
    started = run_slurm_cluster("start")
    if started.returncode == 3:
        pytest.skip(started.stderr.strip())
    assert started.returncode == 0, f"starting SLURM failed:\n{started.stdout}\n{started.stderr}"
    yield started.stdout.strip()
    run_slurm_cluster("stop")


def slurm_test_profile(dest):
    """The repository's cluster profile, scaled to this GPU-less 2-CPU node: no GPU requests, small memory, the
    rules' own thread counts (as in a local run, so results can be compared exactly), and the executor settings of
    a cluster without an accounting database. Everything else (keep-going, retries, groups) is the real profile."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    for resources in profile["set-resources"].values():
        resources.pop("gpu", None)
        resources["mem_mb"] = 1000
    profile["default-resources"]["mem_mb"] = 1000
    profile.pop("set-threads")
    profile.update({"jobs": 4, "latency-wait": 5, "slurm-no-account": True, "slurm-status-command": "squeue",
                    "slurm-init-seconds-before-status-checks": 1})
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest
