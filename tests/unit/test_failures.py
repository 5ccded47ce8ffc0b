"""The end-of-run summary of failed and interrupted jobs, read from a Snakemake main log."""

import pytest

from transferbench.failures import failed_jobs, failure_summary

pytestmark = pytest.mark.unit

# The shape of Snakemake 9's main log around failed jobs (one raised, one stopped by Ctrl-C).
LOG = """\
localrule extract_features:
    input: broken.pth, results/splits/digits.json
    output: results/features/broken/digits.h5
    log: logs/extract_features/broken/digits.log
    jobid: 3
RuleException:
CalledProcessError in file "workflow/rules/features.smk", line 34:
Command 'set -euo pipefail;  python .snakemake/scripts/tmpab.extract_features.py' returned non-zero exit status 1.
[Tue Dec  1 19:16:05 2026]
Error in rule extract_features:
    message: None
    jobid: 3
    input: broken.pth, results/splits/digits.json
    output: results/features/broken/digits.h5
    log: logs/extract_features/broken/digits.log (check log file(s) for error details)
Execute 1 jobs...
RuleException:
CalledProcessError in file "workflow/rules/upstream.smk", line 24:
Command 'set -euo pipefail;  python .snakemake/scripts/tmpcd.pretrain_upstream.py' returned non-zero exit status 130.
Error in rule pretrain_upstream:
    message: None
    jobid: 31
    input: results/datasets/upstream
    output: results/upstream/small/weights.pth, results/upstream/small/metrics.json
    log: logs/pretrain_upstream/small.log (check log file(s) for error details)
Exiting because a job execution failed. Look above for error messages
"""


def test_failed_and_interrupted_jobs_are_read_from_the_main_log():
    jobs = failed_jobs(LOG + LOG)  # a block repeated (two log files) counts once
    assert jobs == [
        {"rule": "extract_features", "output": "results/features/broken/digits.h5",
         "log": "logs/extract_features/broken/digits.log", "interrupted": False},
        {"rule": "pretrain_upstream",
         "output": "results/upstream/small/weights.pth, results/upstream/small/metrics.json",
         "log": "logs/pretrain_upstream/small.log", "interrupted": True},
    ]


def test_summary_names_each_failure_its_error_and_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs/extract_features/broken").mkdir(parents=True)
    (tmp_path / "logs/extract_features/broken/digits.log").write_text(
        "INFO rule extract_features\nTraceback (most recent call last):\n  ...\n"
        "ValueError: checkpoint broken.pth could "
        "not be read\n\n")
    (tmp_path / "main.log").write_text(LOG)
    lines = failure_summary([tmp_path / "main.log"]).splitlines()
    assert lines == [
        "transferbench: 1 job(s) interrupted (Ctrl-C); rerun the same command to finish them (training resumes from "
        "its checkpoints):",
        "  pretrain_upstream -> results/upstream/small/weights.pth, results/upstream/small/metrics.json",
        "transferbench: 1 job(s) failed; the jobs independent of them ran (keep-going):",
        "  extract_features -> results/features/broken/digits.h5",
        "      ValueError: checkpoint broken.pth could not be read",
        "      log: logs/extract_features/broken/digits.log",
    ]


def test_no_failed_job_gives_no_summary(tmp_path):
    (tmp_path / "main.log").write_text("Finished jobid: 1\n3 of 3 steps (100%) done\n")
    assert failure_summary(tmp_path / "main.log") == ""
