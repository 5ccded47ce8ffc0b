# Penultimate-layer features of every model x dataset, cached in HDF5.

from transferbench.features import mark_stale_features

if workflow.is_main_process:
    # The cache never lies: a features file recorded for another model, weights, preprocessing or split (or an
    # unfinished, unreadable one) is marked out of date here, whatever Snakemake's own metadata says.
    mark_stale_features(
        (f"results/features/{m}/{d}.h5", model_spec(m), f"results/splits/{d}.json") for m in MODELS for d in DATASETS
    )


rule extract_features:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split="results/splits/{dataset}.json",
        images=image_cache,
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
