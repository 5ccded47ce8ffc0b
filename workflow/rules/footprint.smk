# What the study will cost before it runs (transferbench.footprint): `snakemake footprint` projects the disk of its
# image caches and features and the GPU-hours of its jobs from the plan, the datasets' sizes and the config's
# `footprint` rates. It needs no data and no weights (architectures are built on the meta device).


rule footprint:
    output:
        table="results/footprint.csv",
        summary="results/footprint.txt",
    log:
        "logs/footprint.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        plan=lambda wc: footprint_plan(),
    script:
        "../scripts/footprint.py"
