# Aggregates: the results table, statistics and figures (named targets).


rule collect_results:
    input:
        results=[row["result"] for row in result_rows()],
        predictions=[row["predictions"] for row in result_rows()],
        splits=expand(PATHS.split, dataset=DATASETS),
        subsets=sorted({row["subset"] for row in result_rows() if row["subset"]}),
        top1=[top1_source(m) for m in MODELS if top1_source(m)],
    output:
        report(PATHS.table, caption="../report/results_table.rst", category="Tables"),
    log:
        "logs/collect_results.log",
    conda:
        CONDA_ENV
    params:
        rows=result_rows(),
    script:
        "../scripts/collect_results.py"


rule compute_statistics:
    input:
        PATHS.table,
    output:
        correlations=report(
            path(PATHS.stats, name="correlations.csv"), caption="../report/correlations.rst", category="Analysis"
        ),
        regressions=report(
            path(PATHS.stats, name="regressions.csv"), caption="../report/regressions.rst", category="Analysis"
        ),
        summaries=path(PATHS.stats, name="regressions.txt"),
        modes=report(
            path(PATHS.stats, name="mode_comparison.csv"), caption="../report/mode_comparison.rst", category="Analysis"
        ),
        paired=report(
            path(PATHS.stats, name="paired_tests.csv"), caption="../report/paired_tests.rst", category="Analysis"
        ),
    log:
        "logs/compute_statistics.log",
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
    script:
        "../scripts/compute_statistics.py"


rule results_latex:
    input:
        PATHS.table,
    output:
        report(PATHS.latex, caption="../report/results_table.rst", category="Tables"),
    log:
        "logs/results_latex.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/write_results_latex.py"


rule fig2_correlation:
    input:
        PATHS.table,
    output:
        **figure("fig2_correlation", "fig2_correlation.rst"),
    log:
        "logs/fig2_correlation.log",
    conda:
        CONDA_ENV
    params:
        upstream_label=UPSTREAM_LABEL,
    script:
        "../scripts/plot_correlation.py"


rule fig_per_dataset:
    input:
        results=PATHS.table,
        paired=rules.compute_statistics.output.paired,
    output:
        **figure("fig_per_dataset", "fig_per_dataset.rst"),
    log:
        "logs/fig_per_dataset.log",
    conda:
        CONDA_ENV
    params:
        upstream_label=UPSTREAM_LABEL,
    script:
        "../scripts/plot_per_dataset.py"


rule fig_modes_per_dataset:
    input:
        PATHS.table,
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
        PATHS.table,
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
        rules.compute_statistics.output.correlations,
    output:
        **figure("fig_dataset_size", "fig_dataset_size.rst"),
    log:
        "logs/fig_dataset_size.log",
    conda:
        CONDA_ENV
    params:
        upstream_label=UPSTREAM_LABEL,
    script:
        "../scripts/plot_dataset_size.py"


# The feature space (config feature_space.enabled): class separation of the cached features and t-SNE maps.
if FEATURE_SPACE:

    rule measure_feature_space:
        input:
            list(main_feature_files().values()),
        output:
            report(PATHS.feature_space, caption="../report/feature_space.rst", category="Analysis"),
        log:
            "logs/measure_feature_space.log",
        conda:
            CONDA_ENV
        params:
            files={f"{m}/{d}": f for (m, d), f in main_feature_files().items()},
            split=config["feature_space"]["split"],
        script:
            "../scripts/measure_feature_space.py"

    rule fig_class_separation:
        input:
            space=PATHS.feature_space,
            results=PATHS.table,
        output:
            **figure("fig_class_separation", "fig_class_separation.rst"),
        log:
            "logs/fig_class_separation.log",
        conda:
            CONDA_ENV
        params:
            upstream_label=UPSTREAM_LABEL,
            mode="linear" if "linear" in config["modes"] else "knn",
            ablation=config["ablation"] if ABLATION else None,
        script:
            "../scripts/plot_class_separation.py"

    rule fig4_tsne:
        input:
            features=[main_feature_files()[(m, tsne_choice()[0])] for m in tsne_choice()[1]],
            space=PATHS.feature_space,
            results=PATHS.table,
            split=path(PATHS.split, dataset=tsne_choice()[0]),
        output:
            **figure("fig4_tsne", "fig4_tsne.rst"),
        log:
            "logs/fig4_tsne.log",
        conda:
            CONDA_ENV
        params:
            dataset=tsne_choice()[0],
            models=tsne_choice()[1],
            settings=config["feature_space"],
        script:
            "../scripts/plot_tsne.py"


# The regularizer ablation (config ablation.enabled): models grouped by their architecture and setting tags.
if ABLATION:

    rule compute_ablation_statistics:
        input:
            PATHS.table,
        output:
            settings=report(
                path(PATHS.stats, name="regularizer_settings.csv"),
                caption="../report/regularizer_settings.rst",
                category="Analysis",
            ),
            steps=report(
                path(PATHS.stats, name="regularizer_steps.csv"),
                caption="../report/regularizer_steps.rst",
                category="Analysis",
            ),
        log:
            "logs/compute_ablation_statistics.log",
        conda:
            CONDA_ENV
        params:
            ablation=config["ablation"],
        script:
            "../scripts/compute_ablation_statistics.py"

    rule fig3_regularizers:
        input:
            settings=path(PATHS.stats, name="regularizer_settings.csv"),
            steps=path(PATHS.stats, name="regularizer_steps.csv"),
        output:
            **figure("fig3_regularizers", "fig3_regularizers.rst"),
        log:
            "logs/fig3_regularizers.log",
        conda:
            CONDA_ENV
        params:
            ablation=config["ablation"],
            upstream_label=UPSTREAM_LABEL.replace(" (%)", "").lower(),
        script:
            "../scripts/plot_regularizers.py"


if BIT_COMPARED:

    rule compare_bit_to_grid:
        input:
            table=PATHS.table,
            runs=[f for pair in bit_grid_pairs() for f in pair["grid"] + [pair["final"], pair["bit"]]],
        output:
            comparison=report(
                path(PATHS.stats, name="bit_vs_grid.csv"), caption="../report/bit_vs_grid.rst", category="Analysis"
            ),
            correlations=path(PATHS.stats, name="bit_vs_grid_correlations.csv"),
        log:
            "logs/compare_bit_to_grid.log",
        conda:
            CONDA_ENV
        params:
            pairs=bit_grid_pairs(),
            seed=config["seed"],
        script:
            "../scripts/compare_bit_to_grid.py"

    rule fig_bit_vs_grid:
        input:
            path(PATHS.stats, name="bit_vs_grid.csv"),
        output:
            **figure("fig_bit_vs_grid", "fig_bit_vs_grid.rst"),
        log:
            "logs/fig_bit_vs_grid.log",
        conda:
            CONDA_ENV
        params:
            upstream_label=UPSTREAM_LABEL,
        script:
            "../scripts/plot_bit_vs_grid.py"
