"""Glue between Snakemake jobs and the package: logging to the rule's log, thread count, Ctrl-C.

Workflow scripts are thin: they unpack the `snakemake` object and call the package inside `job_context`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from contextlib import contextmanager


class JobInterrupted(SystemExit):
    """Ctrl-C (SIGINT) in a job: it stops with exit status 130 and one line. Outputs are written under temporary
    names and renamed when complete, so an interrupted job leaves nothing that looks finished; a training job
    resumes from its last checkpoint when rerun."""


_job = None  # the running job's `snakemake` object once job_context has started: it then logs the interruption


def _interrupted_line() -> str:
    main = sys.modules.get("__main__")
    job = getattr(main, "snakemake", None)
    what = f"{job.rule} {dict(job.wildcards)}" if job is not None else "job"
    return f"interrupted: {what} stopped; rerun to finish it"


def _interrupted(signum, frame):
    if _job is None:  # still importing: no log set up yet. One write, so lines of parallel jobs do not interleave
        os.write(sys.stderr.fileno(), (_interrupted_line() + "\n").encode())
    raise JobInterrupted(130)


def stop_quietly_on_interrupt() -> None:
    """From now on Ctrl-C ends this process with one line on stderr and status 130, no traceback."""
    signal.signal(signal.SIGINT, _interrupted)


@contextmanager
def job_context(snakemake):
    """Log to the rule's log file (and stderr) and limit torch to the job's threads. Seeds are explicit arguments
    of the package's functions, derived from the config seed and the job's names (transferbench.seeding).

    An exception is written to the log with its traceback before it propagates, so a failed job's log says why.
    """
    log_file = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(log_file) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    threads = max(1, int(getattr(snakemake, "threads", 1) or 1))
    torch = sys.modules.get("torch")  # only jobs that use torch have imported it; the others skip its import
    if torch is not None:
        torch.set_num_threads(threads)
        from transferbench.models.spec import import_model_modules

        import_model_modules(snakemake.config.get("model_modules", []))  # their architectures, before any build
    log = logging.getLogger("transferbench.job")
    log.info("rule %s, wildcards %s, %d thread(s)", getattr(snakemake, "rule", "?"), dict(snakemake.wildcards), threads)
    global _job
    _job = snakemake
    try:
        yield
    except JobInterrupted:
        log.error(_interrupted_line())  # one line, to stderr and the job's log
        raise
    except BaseException:
        log.error("job failed:\n%s", traceback.format_exc())
        raise
    if getattr(sys.modules.get("__main__"), "snakemake", None) is snakemake:
        _exit_without_teardown()


def _exit_without_teardown() -> None:
    """End a job whose work is done (its outputs written and closed: atomic renames) without the interpreter's
    teardown, which after importing torch and timm takes 2-3 s of a small job's 10 (measured on 2 cores: `import
    torch, timm` then exit, 9.6 s; then os._exit, 6.9 s). Only the job's own script (the `snakemake` object in
    __main__) ends this way; logs and standard streams are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

