# Prefetch, run where there is internet (a login node): hub weights into the Hugging Face / torchvision caches and
# the paper's datasets into data_root. Every other job runs with HF_HUB_OFFLINE=1 (config hub_offline) and names
# what is missing. `snakemake --cores 1 prefetch [--configfile config/paper.yaml]`; no outputs: it checks and
# fetches each time it is asked for, and skips what is already in place.


rule prefetch:
    log:
        "logs/prefetch.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        models={m: model_params(SimpleNamespace(model=m)) for m in MODELS},
        datasets={
            **{d: config["datasets"][d] for d in DATASETS},
            **{  # detection's VOC 2007 (its devkit holds the boxes too)
                f"detection.{d}": config["detection"]["datasets"][d]
                for d in DETECTION_DATASETS
                if config["detection"]["datasets"][d]["source"] == "voc2007"
            },
        },
        data_root=config["data_root"],
    script:
        "../scripts/prefetch.py"
