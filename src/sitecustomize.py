"""Run by Python at the start of every workflow job: the Snakefile puts src/ on the jobs' PYTHONPATH and sets
TRANSFERBENCH_JOB, and Python imports a `sitecustomize` module found on its path while it starts. Ctrl-C then stops
a job with one line from its first instruction on, instead of a traceback from whatever it was importing (the
terminal signals every job of a run at once; Snakemake's own preamble and torch's import take seconds). Any other
process (Snakemake's main one included) is left as it is. Not part of the installed package."""

import os

if os.environ.get("TRANSFERBENCH_JOB"):
    from transferbench.workflow import stop_quietly_on_interrupt

    stop_quietly_on_interrupt()
