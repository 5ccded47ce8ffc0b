"""The README's commands, read from README.md and run as written from the root of a fresh clone: dry runs where the
real run is too heavy (`-n -q rules` appended: the plan and its job counts), so the README and what the tests check
cannot drift apart. Every shell command the README shows must have a check here (the first test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import ROOT, copy_checkout

pytestmark = pytest.mark.workflow
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent  # the environment the README's install line made (CI runs that line)


def readme_commands() -> list[str]:
    """Every command line of the README's ```bash blocks (comments dropped) and every inline `snakemake ...` span."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        span = " ".join(span.split())
        if span.startswith("snakemake ") and "<" not in span and span not in commands:
            commands.append(span)
    return commands


COMMANDS = readme_commands()
# What each README command is, and how it is checked: dry runs below, or the reason it is not run here.
NOT_RUN = {
    r"^python3 -m venv \.venv && \.venv/bin/pip install -e \"\.\[test\]\" && \.venv/bin/python -m pytest$":
        "the test suite itself (CI runs it through .ci/run)",
    r"^pip install -e \.$": "the install CI's environment already made",
    r"^snakemake --report report\.html$": "needs a finished run: test_tiny_study.py builds the report of one",
    r"^snakemake$": "Snakemake's name in prose",
}
CHECKED = [
    r"\.venv/bin/snakemake --cores 2$", r"^snakemake --cores 2$",
    r"^snakemake -n -q rules --configfile config/paper\.yaml$",
    r"^snakemake --profile slurm -j 64 --configfile config/paper\.yaml$", r"^snakemake --profile slurm -j 64$",
    r"^snakemake --cores 1 prefetch --configfile config/paper\.yaml$", r"^mkdir -p ~/\.config/snakemake && ln -s",
    r"^snakemake --cores 2 fig2_correlation$", r"^snakemake --cores 2 results/linear/cnn_w8_d2/digits\.json$",
    r"^snakemake --cores 2 --forcerun fit_linear_probe$", r"^snakemake --touch$", r"^snakemake --list-changes params$",
    r"^snakemake --lint$",
    r"^snakemake --cores 2 --configfile config/demo_sweeps\.yaml$",
    r"^snakemake --cores 2 fig9_dataset_size --configfile config/demo_sweeps\.yaml$",
    r"^snakemake --cores 1 footprint --configfile config/paper\.yaml$",
    r"^snakemake --cores 2 --configfile config/demo_ablation\.yaml$",
    r"^snakemake --cores 2 --configfile config/demo_rethinking\.yaml$",
    r"^snakemake --cores 2 --configfile config/demo_bit\.yaml$",
    r"^snakemake --cores 2 --configfile config/demo_reuse\.yaml$",
    r"^snakemake --cores 2 --configfile config/demo_detection\.yaml$",
    r"^snakemake --profile slurm -j 64 --configfile config/paper\.yaml config/paper_detection\.yaml$",
]


def command(pattern: str) -> str:
    matches = [c for c in COMMANDS if re.search(pattern, c)]
    assert len(matches) == 1, f"README.md should show one command matching {pattern!r}; found {matches}"
    return matches[0]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh clone of this checkout (conftest.copy_checkout); HOME and the weight caches are empty folders of its
    own."""
    root = copy_checkout(tmp_path_factory.mktemp("clone"))
    (root.parent / f"{root.name}_home").mkdir()
    return root


def run(clone: Path, line: str, check: bool = True) -> subprocess.CompletedProcess:
    """`line` through bash from the clone's root, with the test environment's bin first on PATH (`.venv/bin/` of the
    README's install line is that environment) and the clone's own HOME and caches."""
    line = line.replace(".venv/bin/", f"{VENV_BIN}/")
    home = clone.parent / f"{clone.name}_home"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "HF_HOME": str(home / "hf"),
           "TORCH_HOME": str(home / "torch"), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"README command failed: {line}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def plan(clone: Path, line: str) -> tuple[dict, str]:
    """Dry run of a README command (as written when it is one): ({rule: jobs} of its plan, its stderr)."""
    proc = run(clone, line if " -n -q rules" in line else f"{line} -n -q rules")
    table = proc.stdout[proc.stdout.index("Job stats:"):] if "Job stats:" in proc.stdout else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}, proc.stderr


def test_every_readme_command_is_checked_here():
    unchecked = [c for c in COMMANDS if not any(re.search(p, c) for p in [*NOT_RUN, *CHECKED])]
    assert not unchecked, f"README commands without a check in {Path(__file__).name}: {unchecked}"


def test_quick_start_runs_the_demo_study(clone):
    install_and_run = command(r"\.venv/bin/snakemake --cores 2$")
    counts, stderr = plan(clone, install_and_run.split(" && ")[-1])
    assert "study config/config.yaml: 6 models x 3 datasets x 3 modes" in stderr
    assert counts["pretrain_upstream"] == 6 and counts["total"] == 204
    assert "finetune: 2 grid points x 60 steps at batch 64" in stderr
    again, _ = plan(clone, command(r"^snakemake --cores 2$"))  # the same study, as the README's text names it
    assert again == counts


PAPER_GRID = 7 * 8  # finetune 7 lr x 8 wd; scratch 7 lr x 8 wd (the paper's protocol; transferbench.config)


def assert_paper_study_only(counts: dict, stderr: str) -> None:
    """The paper study as config/paper.yaml describes it, and nothing of the demo's."""
    assert "study config/paper.yaml: 16 models x 12 datasets x 3 modes" in stderr
    assert "22,737 jobs in all" in stderr
    assert counts["make_split"] == 12 and counts["extract_features"] == counts["fit_linear_probe"] == 16 * 12
    assert counts["train_grid_point"] == 16 * 12 * 2 * PAPER_GRID == 21504
    assert counts["select_grid_point"] == counts["train_final"] == 16 * 12 * 2
    # images decoded once per dataset x storage size x interpolation: 256 px bilinear and bicubic, 341, 333, 363 px
    assert counts["cache_images"] == 12 * 5
    assert "pretrain_upstream" not in counts and "generate_dataset" not in counts  # no demo model or dataset
    assert counts["total"] == 22737
    # every train job's protocol: the paper's grid, 20k / 40k steps at batch 256 (no demo setting merged in)
    assert f"finetune: {PAPER_GRID} grid points x 20,000 steps at batch 256\n" in stderr
    assert f"scratch: {PAPER_GRID} grid points x 40,000 steps at batch 256\n" in stderr


def test_paper_plan_is_the_paper_study_only_and_downloads_nothing(clone):
    counts, stderr = plan(clone, command(r"^snakemake -n -q rules --configfile config/paper\.yaml$"))
    assert_paper_study_only(counts, stderr)
    assert "warning: not on disk yet" in stderr and "data/food-101 is missing" in stderr
    home = clone.parent / f"{clone.name}_home"
    assert not (home / "hf").exists() and not (home / "torch").exists() and not (clone / "data").exists()


def test_cluster_profile_as_written_runs_the_paper_study_only(clone):
    run(clone, command(r"^mkdir -p ~/\.config/snakemake && ln -s"))  # the README's one-time profile link
    counts, stderr = plan(clone, command(r"^snakemake --profile slurm -j 64 --configfile config/paper\.yaml$"))
    assert_paper_study_only(counts, stderr)
    counts, stderr = plan(clone, command(r"^snakemake --profile slurm -j 64$"))
    assert "study config/config.yaml: 6 models" in stderr and counts["total"] == 204


def test_prefetch_plans_only_the_prefetch(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 1 prefetch --configfile config/paper\.yaml$"))
    assert counts == {"prefetch": 1, "total": 1}
    assert "study config/paper.yaml: 16 models" in stderr


def test_named_targets_plan_only_what_they_need(clone):
    counts, _ = plan(clone, command(r"^snakemake --cores 2 fig2_correlation$"))
    assert counts["fig2_correlation"] == 1 and "fig_per_dataset" not in counts and "all" not in counts
    counts, _ = plan(clone, command(r"^snakemake --cores 2 results/linear/cnn_w8_d2/digits\.json$"))
    assert counts["fit_linear_probe"] == counts["extract_features"] == counts["pretrain_upstream"] == 1
    assert "train_grid_point" not in counts and "collect_results" not in counts


def test_rerun_commands_run_as_written(clone):
    counts, _ = plan(clone, command(r"^snakemake --cores 2 --forcerun fit_linear_probe$"))
    assert counts["fit_linear_probe"] == 18
    for line in (command(r"^snakemake --touch$"), command(r"^snakemake --list-changes params$"),
                 command(r"^snakemake --lint$")):  # the linter CI runs: no lint in the workflow
        run(clone, f"{line} -n" if "--touch" in line else line)
    assert not (clone / "results" / "tables").exists()  # none of them ran a job


def test_sweeps_demo_plans_the_main_study_and_both_sweeps(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 2 --configfile config/demo_sweeps\.yaml$"))
    assert "study config/demo_sweeps.yaml: 3 models x 1 datasets x 1 modes (linear)" in stderr
    assert f"{counts['total']:,} jobs in all" in stderr
    # dataset size: 3 models x 3 modes x (1 size x 2 draws + all); budgets: 1 model x 2 modes x 2 budgets
    assert counts["draw_subset"] == 3 and counts["fit_linear_probe_on_subset"] == 3 * 3
    assert counts["train_final_in_sweep"] == 3 * 2 * 3 + 2 * 2 and "generate_dataset" in counts
    assert "train_grid_point_in_sweep" not in counts  # the demo's grids have one point: nothing to select
    assert counts["compute_sweep_statistics"] == counts["fig9_dataset_size"] == counts["fig8_convergence"] == 1
    counts, _ = plan(clone, command(r"^snakemake --cores 2 fig9_dataset_size --configfile config/demo_sweeps\.yaml$"))
    assert counts["fig9_dataset_size"] == 1 and "fig8_convergence" not in counts and "all" not in counts


def test_footprint_projects_the_paper_study_offline(clone):
    proc = run(clone, command(r"^snakemake --cores 1 footprint --configfile config/paper\.yaml$"))
    assert "transferbench footprint: disk" in proc.stdout + proc.stderr
    table = pd.read_csv(clone / "results/footprint.csv")
    assert table["kind"].value_counts().to_dict() == {"training": 16 * 12 * 2, "features": 16 * 12, "image cache": 60}
    assert table.loc[table.kind == "training", "jobs"].sum() == 16 * 12 * 2 * (PAPER_GRID + 1)  # grid + final fits
    assert table["bytes"].notna().all() and (table["bytes"] >= 0).all()
    summary = (clone / "results/footprint.txt").read_text()
    assert summary.startswith("transferbench footprint: disk") and "not projected" not in summary
    home = clone.parent / f"{clone.name}_home"
    assert not (home / "hf").exists() and not (clone / "data").exists()  # no weights, no data: nothing fetched


def test_ablation_demo_plans_every_setting_of_both_architectures(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 2 --configfile config/demo_ablation\.yaml$"))
    assert "study config/demo_ablation.yaml: 10 models x 1 datasets x 3 modes (linear, knn, finetune)" in stderr
    assert counts["pretrain_upstream"] == 10 and counts["fit_knn_probe"] == counts["fit_linear_probe"] == 10
    assert counts["compute_ablation_statistics"] == counts["fig3_regularizers"] == counts["fig4_tsne"] == 1
    assert counts["measure_feature_space"] == 1 and "train_grid_point" not in counts  # a one-point grid


def test_rethinking_demo_plans_every_multiple_and_normalization(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 2 --configfile config/demo_rethinking\.yaml$"))
    assert "sweep schedules: 24 runs (1 models, modes finetune, scratch; finetune: 1x, 2x, 4x; scratch: 1x, 2x, " \
           "4x; scratch norms batchnorm, groupnorm, groupnorm_ws)" in stderr
    assert counts["train_final_in_sweep"] == 2 * (3 + 3 * 3) and counts["fig_schedules"] == 1
    assert "train_grid_point_in_sweep" not in counts  # one-point grids


def test_bit_demo_plans_three_seeds_per_model_and_the_comparison(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 2 --configfile config/demo_bit\.yaml$"))
    assert "study config/demo_bit.yaml: 3 models x 1 datasets x 2 modes (finetune, bit) = 6 results" in stderr
    assert counts["train_bit"] == 3 * 3 and counts["pick_bit_median"] == 3 and counts["train_grid_point"] == 3 * 2
    assert counts["compare_bit_to_grid"] == counts["fig_bit_vs_grid"] == 1
    assert f"{counts['total']:,} jobs in all" in stderr


def test_reuse_demo_plans_heads_and_partial_fine_tuning(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 2 --configfile config/demo_reuse\.yaml$"))
    assert "study config/demo_reuse.yaml: 3 models x 1 datasets x 2 modes (linear, finetune)" in stderr
    assert "sweep reuse: 12 runs (3 models, modes finetune, head; heads linear, mlp1-w64, mlp2-w64; fine-tuning " \
           "the last 1, 2 stages or all)" in stderr
    assert counts["fit_head_on_features"] == 3 * 2 and counts["train_final_in_sweep"] == 3 * 2
    assert counts["fig_reuse_capacity"] == 1 and counts["total"] == 46


def test_detection_demo_plans_three_states_at_two_capacities(clone):
    counts, stderr = plan(clone, command(r"^snakemake --cores 2 --configfile config/demo_detection\.yaml$"))
    assert "detection: 18 runs (3 backbones x shapes x states frozen, finetune, scratch x capacities " \
           "fpn16-conv0-fc64, fpn32-conv1-fc128); Faster R-CNN + FPN" in stderr
    assert counts["train_detector_final"] == 18 and counts["generate_detection_dataset"] == 1
    assert counts["fig_detection_top1"] == counts["fig_detection_capacity"] == 1
    assert f"{counts['total']:,} jobs in all" in stderr


def test_paper_detection_command_plans_voc2007_for_the_16_backbones(clone):
    """The command's config files as written; planned up to the detection runs' final fits (the whole paper study's
    plan is checked by test_paper_plan_is_the_paper_study_only_and_downloads_nothing: planning its 23,000 jobs again
    would add minutes and nothing new)."""
    line = command(r"^snakemake --profile slurm -j 64 --configfile config/paper\.yaml config/paper_detection\.yaml$")
    models = yaml.safe_load((clone / "config/paper.yaml").read_text())["models"]
    finals = [f"results/detection/{state}/{model}/voc07_detection/{capacity}/final.json" for model in models
              for state in ("frozen", "finetune", "scratch") for capacity in ("fpn256-conv0", "fpn256-conv4")]
    counts, stderr = plan(clone, line.replace("--profile slurm -j 64", f"{' '.join(finals)} -n -q rules"))
    assert "detection: 96 runs (16 backbones x voc07_detection" in stderr
    assert counts["train_detector_final"] == 96 and counts["train_detector_grid_point"] == 192
    assert counts["make_detection_split"] == 1 and "train_final" not in counts
    assert yaml.safe_load((clone / "config/paper.yaml").read_text())["detection"]["enabled"] is False  # off by default
    assert "PASCAL VOC 2007 is not under data" in stderr  # the data is named, not needed for the plan
