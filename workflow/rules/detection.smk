# Object detection as a transfer task (transferbench.detection): the dataset's split, then per backbone x dataset x
# backbone state x detector capacity the classification modes' machinery: one job per grid point (train -> val), a
# selection, and the final fit (train + val -> test), each resumable from its checkpoint.


rule generate_detection_dataset:
    output:
        directory(PATHS.detection_data),
    log:
        "logs/generate_detection_dataset/{detset}.log",
    conda:
        CONDA_ENV
    params:
        generator=lambda wc: config["detection"]["datasets"][wc.detset]["generator"],
        seed=config["seed"],
    script:
        "../scripts/generate_detection_dataset.py"


rule make_detection_split:
    input:
        unpack(detection_dataset_inputs),
    output:
        PATHS.detection_split,
    log:
        "logs/make_detection_split/{detset}.log",
    conda:
        CONDA_ENV
    params:
        dataset=detection_dataset_params,
        seed=config["seed"],
    script:
        "../scripts/make_detection_split.py"


rule train_detector_grid_point:
    input:
        unpack(model_inputs),
        unpack(detection_dataset_inputs),
        split=PATHS.detection_split,
    output:
        PATHS.detection_grid_point,
    log:
        "logs/train_detector_grid_point/{state}/{model}/{detset}/{capacity}/{point}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=lambda wc: 4320 if wc.state == "scratch" else 1440,  # scratch trains 3x longer (paper.yaml)
        mem_mb=32000,
    params:
        model=model_params,
        dataset=detection_dataset_params,
        capacity=lambda wc: detection_capacity(wc.capacity),
        settings=detection_run_settings,
        hparams=lambda wc: detection_grid_of(wc.state, wc.detset)[wc.point],
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.detection_grid_checkpoint, wc),
    script:
        "../scripts/train_detector.py"


rule select_detector_grid_point:
    input:
        detection_grid_files,
    output:
        PATHS.detection_selection,
    log:
        "logs/select_detector_grid_point/{state}/{model}/{detset}/{capacity}.log",
    conda:
        CONDA_ENV
    params:
        sole_point=lambda wc: sole_point(detection_grid_of(wc.state, wc.detset)),
    script:
        "../scripts/select_grid_point.py"


rule train_detector_final:
    input:
        unpack(model_inputs),
        unpack(detection_dataset_inputs),
        split=PATHS.detection_split,
        selection=PATHS.detection_selection,
    output:
        result=PATHS.detection_final,
        predictions=PATHS.detection_predictions,
    log:
        "logs/train_detector_final/{state}/{model}/{detset}/{capacity}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=lambda wc: 4320 if wc.state == "scratch" else 1440,  # scratch trains 3x longer (paper.yaml)
        mem_mb=32000,
    params:
        model=model_params,
        dataset=detection_dataset_params,
        capacity=lambda wc: detection_capacity(wc.capacity),
        settings=detection_run_settings,
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.detection_final_checkpoint, wc),
    script:
        "../scripts/train_detector.py"


if DETECTION_RUNS:

    rule compute_detection_statistics:
        input:
            PATHS.table,
        output:
            summary=path(PATHS.stats, name="detection_summary.csv"),
            correlations=report(
                path(PATHS.stats, name="detection_correlations.csv"),
                caption="../report/detection_correlations.rst",
                category="Analysis",
            ),
        log:
            "logs/compute_detection_statistics.log",
        conda:
            CONDA_ENV
        params:
            seed=config["seed"],
        script:
            "../scripts/compute_detection_statistics.py"

    rule fig_detection_top1:
        input:
            summary=rules.compute_detection_statistics.output.summary,
            correlations=rules.compute_detection_statistics.output.correlations,
        output:
            **figure("fig_detection_top1", "fig_detection_top1.rst"),
        log:
            "logs/fig_detection_top1.log",
        conda:
            CONDA_ENV
        params:
            upstream_label=UPSTREAM_LABEL,
        script:
            "../scripts/plot_detection_top1.py"

    rule fig_detection_capacity:
        input:
            rules.compute_detection_statistics.output.summary,
        output:
            **figure("fig_detection_capacity", "fig_detection_capacity.rst"),
        log:
            "logs/fig_detection_capacity.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/plot_detection_capacity.py"
