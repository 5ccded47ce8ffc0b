# Penultimate-layer features of every model x dataset, cached in HDF5.


rule extract_features:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split="results/splits/{dataset}.json",
    output:
        "results/features/{model}/{dataset}.h5",
    params:
        model=model_params,
        dataset=dataset_params,
        settings=config["features"],
    threads: 1
    resources:
        runtime=120,
        mem_mb=16000,
    log:
        "logs/extract_features/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/extract_features.py"
