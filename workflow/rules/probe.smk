# The probes on cached features: the linear mode (L-BFGS logistic regression over the regularization path) and the
# knn mode (cosine k-nearest neighbours, k chosen on val).


rule fit_linear_probe:
    input:
        features=PATHS.features,
        split=PATHS.split,
    output:
        result=PATHS.linear_result,
        predictions=PATHS.linear_predictions,
    log:
        "logs/fit_linear_probe/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=16000,
    params:
        weight_decays=linear_grid(config),
        settings=config["linear"],
        metric=lambda wc: config["datasets"][wc.dataset]["metric"],
    script:
        "../scripts/fit_linear_probe.py"


rule fit_knn_probe:
    input:
        features=PATHS.features,
        split=PATHS.split,
    output:
        result=PATHS.knn_result,
        predictions=PATHS.knn_predictions,
    log:
        "logs/fit_knn_probe/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=16000,
    params:
        settings=config["knn"],
        metric=lambda wc: config["datasets"][wc.dataset]["metric"],
    script:
        "../scripts/fit_knn_probe.py"


# The reuse study's heads (transferbench.probe.heads): MLPs of growing capacity on the same cached features, each
# with its own grid, selection on val and refit, in one job.
rule fit_head_on_features:
    input:
        features=PATHS.features,
        split=PATHS.split,
    output:
        result=PATHS.head_result,
        predictions=PATHS.head_predictions,
    log:
        "logs/fit_head_on_features/{model}/{dataset}/{variant}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=16000,
    params:
        grid=lambda wc: head_grid(),
        settings=lambda wc: head_settings(),
        metric=lambda wc: config["datasets"][wc.dataset]["metric"],
        seed=config["seed"],
    script:
        "../scripts/fit_head_on_features.py"
