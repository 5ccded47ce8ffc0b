# Data: the demo's generated datasets, the train/val/test split of every dataset, and its images decoded once per
# storage size (shared by every model at that size).


rule generate_dataset:
    output:
        directory(PATHS.generated),
    log:
        "logs/generate_dataset/{dataset}.log",
    conda:
        CONDA_ENV
    params:
        generator=generator_params,
        seed=config["seed"],
    script:
        "../scripts/generate_dataset.py"


rule make_split:
    input:
        unpack(dataset_inputs),
    output:
        PATHS.split,
    log:
        "logs/make_split/{dataset}.log",
    conda:
        CONDA_ENV
    params:
        dataset=dataset_params,
        seed=config["seed"],
    script:
        "../scripts/make_split.py"


rule cache_images:
    input:
        unpack(dataset_inputs),
        split=PATHS.split,
    output:
        PATHS.images,
    log:
        "logs/cache_images/{dataset}/{size}px_{interpolation}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    params:
        dataset=dataset_params,
    script:
        "../scripts/cache_images.py"
