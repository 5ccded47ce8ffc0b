"""Run by Python at the start of every workflow job: the Snakefile puts src/ on the jobs' PYTHONPATH, and Python
imports a `sitecustomize` module found there while it starts. Ctrl-C then stops a job with one line from its first
instruction on, instead of a traceback from whatever it was importing (the terminal signals every job of a run at
once, and Snakemake's own preamble and torch's import take seconds). Not part of the installed package."""

from transferbench.workflow import stop_quietly_on_interrupt

stop_quietly_on_interrupt()
