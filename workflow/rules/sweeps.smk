# The sweeps (transferbench.sweeps): the dataset-size study (training-set subsets: Kornblith et al. Fig. 9, BiT's
# few-shot transfer) and the training-budget study (Fig. 8). Their runs are the probe's and the training jobs'
# rules with other outputs (use rule ... with): a subset reuses the cached features, a budget trains with its own
# grid search, selection and final fit.


rule draw_subset:
    input:
        split=PATHS.split,
    output:
        PATHS.subset,
    log:
        "logs/draw_subset/{dataset}/{subset}.log",
    conda:
        CONDA_ENV
    params:
        seed=config["seed"],
    script:
        "../scripts/draw_subset.py"


use rule fit_linear_probe as fit_linear_probe_on_subset with:
    input:
        features=PATHS.features,
        split=PATHS.split,
        subset=PATHS.subset,
    output:
        result=PATHS.subset_linear_result,
        predictions=PATHS.subset_linear_predictions,
    log:
        "logs/fit_linear_probe_on_subset/{model}/{dataset}/{subset}.log",


use rule train_grid_point as train_grid_point_in_sweep with:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        unpack(sweep_inputs),
        split=PATHS.split,
        images=image_cache,
    output:
        PATHS.sweep_grid_point,
    log:
        "logs/train_grid_point_in_sweep/{study}/{mode}/{model}/{dataset}/{variant}/{point}.log",
    params:
        model=model_params,
        dataset=dataset_params,
        settings=sweep_run_settings,
        hparams=lambda wc: sweep_grid(wc.study, wc.mode, wc.dataset)[wc.point],
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.sweep_grid_checkpoint, wc),


use rule select_grid_point as select_grid_point_in_sweep with:
    input:
        sweep_grid_files,
    output:
        PATHS.sweep_selection,
    log:
        "logs/select_grid_point_in_sweep/{study}/{mode}/{model}/{dataset}/{variant}.log",
    params:
        sole_point=lambda wc: sole_point(sweep_grid(wc.study, wc.mode, wc.dataset)),


use rule train_final as train_final_in_sweep with:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        unpack(sweep_inputs),
        split=PATHS.split,
        selection=PATHS.sweep_selection,
        images=image_cache,
    output:
        result=PATHS.sweep_final_result,
        predictions=PATHS.sweep_final_predictions,
    log:
        "logs/train_final_in_sweep/{study}/{mode}/{model}/{dataset}/{variant}.log",
    params:
        model=model_params,
        dataset=dataset_params,
        settings=sweep_run_settings,
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.sweep_final_checkpoint, wc),


# The sweeps' aggregates exist only when a sweep is on (a figure target of a sweep that is off has no rule).
if SWEEP_RUNS:

    rule compute_sweep_statistics:
        input:
            PATHS.table,
        output:
            **(
                {
                    "dataset_size": path(PATHS.stats, name="dataset_size.csv"),
                    "size_correlations": path(PATHS.stats, name="size_correlations.csv"),
                    "few_shot": report(PATHS.few_shot, caption="../report/few_shot.rst", category="Tables"),
                }
                if "dataset_size" in SWEEP_STUDIES
                else {}
            ),
            **({"convergence": path(PATHS.stats, name="convergence.csv")} if "budgets" in SWEEP_STUDIES else {}),
            **(
                {
                    "schedules": path(PATHS.stats, name="schedule_gaps.csv"),
                    "schedule_summary": path(PATHS.stats, name="schedule_summary.csv"),
                }
                if "schedules" in SWEEP_STUDIES
                else {}
            ),
            **(
                {
                    "reuse_points": path(PATHS.stats, name="reuse_points.csv"),
                    "reuse_summary": path(PATHS.stats, name="reuse_summary.csv"),
                    "reuse_gains": path(PATHS.stats, name="reuse_gains.csv"),
                }
                if "reuse" in SWEEP_STUDIES
                else {}
            ),
        log:
            "logs/compute_sweep_statistics.log",
        conda:
            CONDA_ENV
        params:
            seed=config["seed"],
            size_groups=config["sweeps"].get("reuse", {}).get("size_groups", [10000]),
        script:
            "../scripts/compute_sweep_statistics.py"


if "dataset_size" in SWEEP_STUDIES:

    rule fig9_dataset_size:
        input:
            rules.compute_sweep_statistics.output.dataset_size,
        output:
            **figure("fig9_dataset_size", "fig9_dataset_size.rst"),
        log:
            "logs/fig9_dataset_size.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/plot_fig9_dataset_size.py"


if "budgets" in SWEEP_STUDIES:

    rule fig8_convergence:
        input:
            results=PATHS.table,
            convergence=rules.compute_sweep_statistics.output.convergence,
        output:
            **figure("fig8_convergence", "fig8_convergence.rst"),
        log:
            "logs/fig8_convergence.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/plot_fig8_convergence.py"


if "schedules" in SWEEP_STUDIES:

    rule fig_schedules:
        input:
            rules.compute_sweep_statistics.output.schedule_summary,
        output:
            **figure("fig_schedules", "fig_schedules.rst"),
        log:
            "logs/fig_schedules.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/plot_schedules.py"


if "reuse" in SWEEP_STUDIES:

    rule fig_reuse_capacity:
        input:
            rules.compute_sweep_statistics.output.reuse_summary,
        output:
            **figure("fig_reuse_capacity", "fig_reuse_capacity.rst"),
        log:
            "logs/fig_reuse_capacity.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/plot_reuse_capacity.py"
