"""transferbench: do better ImageNet models transfer better? (Kornblith, Shlens & Le, CVPR 2019).

The package holds the logic of every workflow stage; it knows nothing of Snakemake. Stages, in data-flow order:
config -> synthetic (demo data) -> datasets/splits -> images -> models -> upstream pretraining (training)
-> features -> probe (linear) / training (finetune, scratch) -> selection -> results -> stats -> figures.
"""

__version__ = "0.1.0"
