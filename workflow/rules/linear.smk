# The linear mode: L-BFGS logistic regression on cached features over the regularization path.


rule fit_linear_probe:
    input:
        features="results/features/{model}/{dataset}.h5",
        split="results/splits/{dataset}.json",
    output:
        result="results/linear/{model}/{dataset}.json",
        predictions="results/linear/{model}/{dataset}.predictions.npz",
    params:
        weight_decays=linear_grid(config),
        settings=config["linear"],
        metric=lambda wc: config["datasets"][wc.dataset]["metric"],
    threads: 1
    resources:
        runtime=60,
        mem_mb=16000,
    log:
        "logs/fit_linear_probe/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/fit_linear_probe.py"
