# Data: the demo's generated datasets, and the train/val/test split of every dataset.


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
