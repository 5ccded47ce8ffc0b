"""The failed jobs of a Snakemake run, summarized from its main log: each job with its error and the log file to
read, and the jobs stopped by Ctrl-C one line each. Printed at the end of a run that kept going past failures
(profiles/default: keep-going) or was interrupted."""

from __future__ import annotations

import re
from pathlib import Path

_ERROR_BLOCK = re.compile(r"^Error in rule (?P<rule>\S+):\n(?P<body>(?:[ \t]+.*\n?)*)", re.MULTILINE)
INTERRUPTED_STATUS = 130  # a job stopped by Ctrl-C (transferbench.workflow.JobInterrupted)


def failed_jobs(snakemake_log: str) -> list[dict]:
    """[{'rule', 'output', 'log', 'interrupted'}] for each 'Error in rule' block of a Snakemake main log, in order,
    once each. `interrupted`: the job's script exited with status 130 (Ctrl-C), said just before its block."""
    jobs, seen, previous_end = [], set(), 0
    for match in _ERROR_BLOCK.finditer(snakemake_log):
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", match["body"], re.MULTILINE))
        log = fields.get("log", "").split(" (check log")[0].split(", ")[0] or None
        before = snakemake_log[previous_end:match.start()]
        previous_end = match.end()
        job = {"rule": match["rule"], "output": fields.get("output"), "log": log,
               "interrupted": f"non-zero exit status {INTERRUPTED_STATUS}." in before}
        key = (job["rule"], job["output"])
        if key not in seen:
            seen.add(key)
            jobs.append(job)
    return jobs


def last_error_line(log_file) -> str:
    """The last non-empty line of a job's log (its exception, when the job raised one), or ''."""
    try:
        lines = Path(log_file).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def failure_summary(snakemake_logs) -> str:
    """Lines naming every failed job, its error and its log file; '' when none failed. `snakemake_logs`: the main
    log file(s) of the run (what Snakemake hands to `onerror`)."""
    paths = [snakemake_logs] if isinstance(snakemake_logs, (str, Path)) else list(snakemake_logs)
    jobs = failed_jobs("".join(Path(p).read_text(errors="replace") for p in paths))
    interrupted = [job for job in jobs if job["interrupted"]]
    failed = [job for job in jobs if not job["interrupted"]]
    lines = []
    if interrupted:
        lines.append(f"transferbench: {len(interrupted)} job(s) interrupted (Ctrl-C); rerun the same command to finish "
                     "them (training resumes from its checkpoints):")
        lines += [f"  {job['rule']} -> {job['output']}" for job in interrupted]
    if failed:
        lines.append(f"transferbench: {len(failed)} job(s) failed; the jobs independent of them ran (keep-going):")
    for job in failed:
        error = last_error_line(job["log"]) if job["log"] else ""
        lines.append(f"  {job['rule']} -> {job['output']}")
        if error:
            lines.append(f"      {error[:300]}")
        lines.append(f"      log: {job['log'] or '(none)'}")
    return "\n".join(lines)
