# Aggregates: the results table, statistics and figures (named targets).


rule collect_results:
    input:
        results=[row["result"] for row in result_rows()],
        splits=expand("results/splits/{dataset}.json", dataset=DATASETS),
        top1=[upstream_weights(m).replace("weights.pth", "metrics.json") for m in UPSTREAM_MODELS],
    output:
        "results/tables/results.csv",
    params:
        rows=result_rows(),
    log:
        "logs/collect_results.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/collect_results.py"


rule compute_statistics:
    input:
        "results/tables/results.csv",
    output:
        "results/stats/correlations.csv",
    params:
        seed=config["seed"],
    log:
        "logs/compute_statistics.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/compute_statistics.py"


rule fig2_correlation:
    input:
        "results/tables/results.csv",
    output:
        pdf="results/figures/fig2_correlation.pdf",
        png="results/figures/fig2_correlation.png",
    params:
        upstream_label="Upstream top-1 (%)" if UPSTREAM_MODELS else "ImageNet top-1 (%)",
    log:
        "logs/fig2_correlation.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_correlation.py"
