# Penultimate-layer features of every model x dataset, cached in HDF5.


rule flag_stale_features:
    output:
        temp(PATHS.stale_features),
    log:
        "logs/flag_stale_features/{model}/{dataset}.log",
    localrule: True
    conda:
        CONDA_ENV
    params:
        reasons=lambda wc: stale_features(wc)[1],
    script:
        "../scripts/flag_stale_features.py"


rule extract_features:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        stale=lambda wc: stale_features(wc)[0],
        split=PATHS.split,
        images=image_cache,
    output:
        PATHS.features,
    log:
        "logs/extract_features/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=120,
        mem_mb=16000,
    params:
        model=model_params,
        dataset=dataset_params,
        settings=config["features"],
    script:
        "../scripts/extract_features.py"
