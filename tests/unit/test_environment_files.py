"""The conda environment (for --software-deployment-method conda) lists the same dependencies as pyproject."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_conda_env_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "envs" / "transferbench.yaml").read_text())
    pip_deps = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = sorted(r for r in pip_deps if not r.startswith("-e"))
    assert sorted(project["dependencies"]) == listed
    assert {_name(r) for r in project["dependencies"]} == {_name(r) for r in listed}
