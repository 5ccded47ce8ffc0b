# Penultimate-layer features of every model x dataset, cached in HDF5.

from transferbench.features.extract import mark_out_of_date, stale_features

if workflow.is_main_process:
    # The cache never lies: a features file recorded for another model, weights, preprocessing or split (or an
    # unfinished, unreadable one) is marked out of date here (its mtime set to the epoch), whatever Snakemake's own
    # records say. A run that only looks (dry run, --lint, --list-changes, summaries) changes no file: it names them.
    STALE_FEATURES = stale_features(
        (path(PATHS.features, model=m, dataset=d), model_spec(m), path(PATHS.split, dataset=d))
        for m in MODELS
        for d in DATASETS
    )
    for features, reasons in STALE_FEATURES:
        print(
            f"transferbench: {features} was made for something else ({'; '.join(reasons)}): "
            + ("a run recomputes it" if ONLY_LOOKING else "recomputing it"),
            file=sys.stderr,
        )
    if not ONLY_LOOKING:
        mark_out_of_date(features for features, _ in STALE_FEATURES)


rule extract_features:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
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
