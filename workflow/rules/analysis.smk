# Aggregates: the results table, statistics and figures (named targets).


rule collect_results:
    input:
        results=[row["result"] for row in result_rows()],
        predictions=[row["predictions"] for row in result_rows()],
        splits=expand("results/splits/{dataset}.json", dataset=DATASETS),
        top1=[top1_source(m) for m in MODELS if top1_source(m)],
    output:
        report("results/tables/results.csv", caption="../report/results_table.rst", category="Tables"),
    params:
        rows=result_rows(),
    log:
        "logs/collect_results.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/collect_results.py"


FIGURE_KINDS = ["fig2_correlation", "fig_per_dataset", "fig_modes_per_dataset", "fig_dataset_size"]
if {"finetune", "scratch"} <= set(config["modes"]):
    FIGURE_KINDS.append("fig_finetune_vs_scratch")
UPSTREAM_LABEL = "Upstream top-1 (%)" if UPSTREAM_MODELS else "ImageNet top-1 (%)"
STATS = "results/stats"


def figure(name, caption):
    """A figure's PDF and PNG; the PNG goes into the Snakemake report with its caption (workflow/report/)."""
    return {"pdf": f"results/figures/{name}.pdf",
            "png": report(f"results/figures/{name}.png", caption=f"../report/{caption}", category="Figures")}


rule compute_statistics:
    input:
        "results/tables/results.csv",
    output:
        correlations=report(f"{STATS}/correlations.csv", caption="../report/correlations.rst", category="Analysis"),
        regressions=report(f"{STATS}/regressions.csv", caption="../report/regressions.rst", category="Analysis"),
        summaries=f"{STATS}/regressions.txt",
        modes=report(f"{STATS}/mode_comparison.csv", caption="../report/mode_comparison.rst", category="Analysis"),
        paired=report(f"{STATS}/paired_tests.csv", caption="../report/paired_tests.rst", category="Analysis"),
    params:
        seed=config["seed"],
    log:
        "logs/compute_statistics.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/compute_statistics.py"


rule results_latex:
    input:
        "results/tables/results.csv",
    output:
        report("results/tables/results.tex", caption="../report/results_table.rst", category="Tables"),
    log:
        "logs/results_latex.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/write_results_latex.py"


rule fig2_correlation:
    input:
        "results/tables/results.csv",
    output:
        **figure("fig2_correlation", "fig2_correlation.rst"),
    params:
        upstream_label=UPSTREAM_LABEL,
    log:
        "logs/fig2_correlation.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_correlation.py"


rule fig_per_dataset:
    input:
        results="results/tables/results.csv",
        paired=f"{STATS}/paired_tests.csv",
    output:
        **figure("fig_per_dataset", "fig_per_dataset.rst"),
    params:
        upstream_label=UPSTREAM_LABEL,
    log:
        "logs/fig_per_dataset.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_per_dataset.py"


rule fig_modes_per_dataset:
    input:
        "results/tables/results.csv",
    output:
        **figure("fig_modes_per_dataset", "fig_modes_per_dataset.rst"),
    log:
        "logs/fig_modes_per_dataset.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_modes_per_dataset.py"


rule fig_finetune_vs_scratch:
    input:
        "results/tables/results.csv",
    output:
        **figure("fig_finetune_vs_scratch", "fig_finetune_vs_scratch.rst"),
    log:
        "logs/fig_finetune_vs_scratch.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_finetune_vs_scratch.py"


rule fig_dataset_size:
    input:
        f"{STATS}/correlations.csv",
    output:
        **figure("fig_dataset_size", "fig_dataset_size.rst"),
    params:
        upstream_label=UPSTREAM_LABEL,
    log:
        "logs/fig_dataset_size.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/plot_dataset_size.py"
