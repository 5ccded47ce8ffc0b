"""Glue between Snakemake jobs and the package: logging to the rule's log, thread count.

Workflow scripts are thin: they unpack the `snakemake` object and call the package inside `job_context`.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from contextlib import contextmanager


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
        from .models import import_model_modules

        import_model_modules(snakemake.config.get("model_modules", []))  # their architectures, before any build
    log = logging.getLogger("transferbench.job")
    log.info("rule %s, wildcards %s, %d thread(s)", getattr(snakemake, "rule", "?"), dict(snakemake.wildcards), threads)
    try:
        yield
    except BaseException:
        log.error("job failed:\n%s", traceback.format_exc())
        raise

