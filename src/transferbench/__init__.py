"""transferbench: do better ImageNet models transfer better? (Kornblith, Shlens & Le, CVPR 2019).

The package holds the logic of every workflow stage; it knows nothing of Snakemake. Stages, in data-flow order:
config -> synthetic (demo data) -> datasets/splits -> images -> models -> upstream pretraining (training)
-> features -> probe (linear) / training (finetune, scratch) -> selection -> results -> stats -> figures.
"""

import sys

__version__ = "0.1.0"

# In a Snakemake script job (its __main__ holds the `snakemake` object) Ctrl-C ends the job with one line instead of
# a traceback from whatever it was importing: the terminal signals every job of the run at once. Done here, at the
# first import of any job script, before the slow torch import.
if hasattr(sys.modules.get("__main__"), "snakemake"):
    from .workflow import stop_quietly_on_interrupt

    stop_quietly_on_interrupt()
