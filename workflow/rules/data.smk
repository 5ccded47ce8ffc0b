# Data: the demo's generated datasets, the train/val/test split of every dataset, and its images decoded once per
# storage size (shared by every model at that size).


rule generate_dataset:
    output:
        directory("results/datasets/{dataset}"),
    params:
        generator=generator_params,
        seed=config["seed"],
    log:
        "logs/generate_dataset/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/generate_dataset.py"


rule make_split:
    input:
        unpack(dataset_inputs),
    output:
        "results/splits/{dataset}.json",
    params:
        dataset=dataset_params,
        seed=config["seed"],
    log:
        "logs/make_split/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/make_split.py"


rule cache_images:
    input:
        unpack(dataset_inputs),
        split="results/splits/{dataset}.json",
    output:
        "results/images/{dataset}/{size}px_{interpolation}.h5",
    params:
        dataset=dataset_params,
    threads: 1
    resources:
        runtime=120,
        mem_mb=4000,
    log:
        "logs/cache_images/{dataset}/{size}px_{interpolation}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/cache_images.py"
