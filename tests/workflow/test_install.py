"""A non-editable install (`pip install .`, what a cluster's shared environment often gets) carries everything the
package reads at run time: the config schema ships inside it, so configs are checked from anywhere."""

import subprocess
import sys

import pytest

from .conftest import ROOT, copy_checkout

pytestmark = pytest.mark.workflow


def test_non_editable_install_checks_configs_outside_the_clone(tmp_path):
    # the package built and installed as `pip install .` would (its dependencies are this environment's)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", "--target",
                    str(tmp_path / "site"), str(copy_checkout(tmp_path / "clone"))], check=True, capture_output=True)
    check = (f"import transferbench, transferbench.checks as c, transferbench.config as cfg\n"
             f"assert transferbench.__file__.startswith({str(tmp_path / 'site')!r}), transferbench.__file__\n"
             f"config = c.validate_config(cfg.load_config({str(ROOT / 'config' / 'config.yaml')!r}))\n"
             f"print(cfg.SCHEMA, len(config['models']))\n")
    proc = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    schema, models = proc.stdout.split()
    assert schema == str(tmp_path / "site" / "transferbench" / "config.schema.yaml") and models == "6"
