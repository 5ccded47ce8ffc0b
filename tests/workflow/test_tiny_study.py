"""The tiny study end to end: real jobs, real files, the same code paths as the demo and the paper study."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import pandas as pd
import pytest
import yaml

from .conftest import ROOT, TINY, snakemake

pytestmark = pytest.mark.workflow


def test_results_table_has_a_row_per_model_dataset_mode(tiny_run):
    table = pd.read_csv(tiny_run / "results/tables/results.csv")
    assert {"model", "dataset", "mode", "metric", "value", "imagenet_top1", "n_train"} <= set(table.columns)
    assert len(table) == 2 * 2 * 3
    assert set(table["mode"]) == {"linear", "finetune", "scratch"}
    assert table["value"].between(0, 1).all()
    assert set(table.query("dataset == 'marks'")["metric"]) == {"mean_per_class"}
    upstream = {m: json.loads((tiny_run / f"results/upstream/{m}/metrics.json").read_text())["top1"]
                for m in ("small", "large")}
    for model, top1 in upstream.items():
        assert table[table.model == model]["imagenet_top1"].tolist() == pytest.approx([top1] * 6, rel=1e-5)
    split = json.loads((tiny_run / "results/splits/digits.json").read_text())
    assert (table.query("dataset == 'digits'")["n_train"] == split["n_train"]).all()


def test_features_are_cached_in_hdf5_with_their_provenance(tiny_run):
    with h5py.File(tiny_run / "results/features/large/marks.h5") as h5:
        assert h5.attrs["complete"] and h5.attrs["model"] == "large" and h5.attrs["resolution"] == 16
        assert h5.attrs["checkpoint"] == "results/upstream/large/weights.pth"
        assert h5["train"]["features"].shape[1] == 16 and len(h5["test"]["labels"]) == 12 * 4
        assert "timm" in json.loads(h5.attrs["versions"])


def test_training_jobs_write_curves_selection_and_predictions(tiny_run):
    base = tiny_run / "results/finetune/small/digits"
    grid = sorted(p.name for p in (base / "grid").iterdir())
    assert grid == ["lr0.01_wd1e-05.json", "lr0.05_wd1e-05.json"]  # checkpoints were cleaned up
    selection = json.loads((base / "selection.json").read_text())
    final = json.loads((base / "final.json").read_text())
    assert final["point"] == selection["chosen"] and final["eval_split"] == "test"
    assert final["steps"] == 4 and final["images_seen"] == 64 and not final["diverged"]
    assert (base / "predictions.npz").exists()


def test_diverging_grid_point_is_recorded_and_skipped(tiny_run):
    base = tiny_run / "results/scratch/large/marks"
    diverged = json.loads((base / "grid/lr1e+30_wd1e-05.json").read_text())
    assert diverged["diverged"] and diverged["steps"] < 4
    assert diverged["value"] == pytest.approx(1 / 12)  # chance level of mean per-class accuracy on 12 classes
    selection = json.loads((base / "selection.json").read_text())
    assert selection["chosen"] == "lr0.05_wd1e-05" and selection["grid"]["lr1e+30_wd1e-05"]["diverged"]
    assert json.loads((base / "final.json").read_text())["diverged"] is False


def test_statistics_figures_tables_and_report(tiny_run, tmp_path):
    corr = pd.read_csv(tiny_run / "results/stats/correlations.csv")
    assert set(corr.query("subset == 'all'")["mode"]) == {"linear", "finetune", "scratch"}
    paired = pd.read_csv(tiny_run / "results/stats/paired_tests.csv")
    assert len(paired) == 2 * 2 * 3 and paired.groupby(["mode", "dataset"])["not_worse"].any().all()
    modes = pd.read_csv(tiny_run / "results/stats/mode_comparison.csv")
    assert (modes["pairs"] == 4).all()
    for name in ("fig2_correlation", "fig_per_dataset", "fig_modes_per_dataset", "fig_finetune_vs_scratch",
                 "fig_dataset_size"):
        pdf = (tiny_run / f"results/figures/{name}.pdf").read_bytes()
        assert b"/FontFile2" in pdf, name  # TrueType fonts embedded
        assert (tiny_run / f"results/figures/{name}.png").stat().st_size > 10_000, name
    tex = (tiny_run / "results/tables/results.tex").read_text()
    assert tex.count(r"\midrule") == 3 and r"\bottomrule" in tex
    report = tmp_path / "report.html"
    snakemake(tiny_run, "--report", str(report))
    html = report.read_text(errors="replace")
    for name in ("fig2_correlation.png", "fig_per_dataset.png", "results.tex", "paired_tests.csv"):
        assert name in html, name
    assert "Holm-corrected" in html  # the captions are in


def interrupt_with_ctrl_c(workdir) -> tuple[int, str]:
    """Start the workflow as a terminal would, press Ctrl-C once jobs are running (SIGINT to the whole process group,
    as the terminal sends it); return its exit status and output."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (workdir / "logs").exists() and time.monotonic() < deadline:  # the first jobs have started
        time.sleep(0.2)
    time.sleep(2)  # inside their imports: where the interrupt used to print a torch traceback per job
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def test_ctrl_c_prints_a_line_per_job_and_the_rerun_is_identical(tiny_run, tmp_path):
    # The finished tiny run without its trained modes and aggregates: Ctrl-C lands in training jobs, the rerun redoes
    # them and the aggregates (training is where determinism is hardest), and the tables must equal the first run's.
    again = tmp_path / "again"
    shutil.copytree(tiny_run, again, symlinks=True)
    for name in ("finetune", "scratch", "tables", "stats", "figures"):
        shutil.rmtree(again / "results" / name)
    shutil.rmtree(again / "logs")  # (the interrupt waits for the first job's log)
    status, out = interrupt_with_ctrl_c(again)
    assert status != 0
    assert "Traceback" not in out, out[-4000:]
    # one line per job, named once its script has started, 'job' before (in Snakemake's preamble)
    stopped = re.findall(r"interrupted: (\w+ \{[^}]*\}|job) stopped; rerun to finish it$", out, re.MULTILINE)
    assert stopped, out[-4000:]
    assert re.search(rf"transferbench: {len(stopped)} job\(s\) interrupted \(Ctrl-C\)", out), out[-2000:]
    # the rerun finishes the study, and two runs (one of them interrupted) give byte-identical tables
    snakemake(again, "--cores", "2")
    for name in ("results/tables/results.csv", "results/stats/correlations.csv"):
        assert (again / name).read_text() == (tiny_run / name).read_text(), name


def test_bad_config_stops_before_any_job(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["modes"] = ["linear", "fintune"]
    config["models"]["small"]["timm"] = "tb_demo_cnn"
    workdir = tmp_path / "bad"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--cores", "2", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "config key 'modes.1'" in message and "did you mean 'finetune'" in message
    assert not (workdir / "results").exists()


def test_missing_data_stops_before_any_job_and_a_dry_run_names_it(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["folder"] = {"source": "imagefolder", "root": "no/such/folder", "metric": "top1"}
    workdir = tmp_path / "missing"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--cores", "2", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr  # (Snakemake prints a parse-time WorkflowError on stdout)
    assert "config key 'datasets.folder.root': no/such/folder/train and no/such/folder/test not found" in message
    assert "Traceback" not in message

    # a paper dataset that is not fetched yet: the plan warns, a real run stops before any job, prefetch is allowed
    del config["datasets"]["folder"]
    config["datasets"]["pets"] = {"source": "oxford_pets"}
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    planned = snakemake(workdir, "-n", "--cores", "2")
    assert "warning: not on disk yet" in planned.stderr and "data/oxford-iiit-pet is missing" in planned.stderr
    proc = snakemake(workdir, "--cores", "2", check=False)
    assert proc.returncode != 0 and "datasets missing" in proc.stdout + proc.stderr
    assert not (workdir / "results").exists()
