# Training: the demo's upstream pretraining (its ImageNet), and the finetune and scratch modes: one job per grid point
# (train -> val), a selection, and the final fit (train+val -> test). Checkpoints beside the outputs make a preempted
# job resume where it stopped.


rule pretrain_upstream:
    input:
        data=path(PATHS.generated, dataset="upstream"),
    output:
        weights=PATHS.upstream_weights,
        metrics=PATHS.upstream_metrics,
    log:
        "logs/pretrain_upstream/{model}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=240,
        mem_mb=8000,
    params:
        model=model_params,
        settings=lambda wc: upstream_settings(config, wc.model),
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.upstream_checkpoint, wc),
    script:
        "../scripts/pretrain_upstream.py"


rule train_grid_point:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split=PATHS.split,
        images=image_cache,
    output:
        PATHS.grid_point,
    log:
        "logs/train_grid_point/{mode}/{model}/{dataset}/{point}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=600,
        mem_mb=16000,
    params:
        model=model_params,
        dataset=dataset_params,
        settings=run_settings,
        hparams=lambda wc: mode_grid(wc.mode, wc.dataset)[wc.point],
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.grid_checkpoint, wc),
    script:
        "../scripts/train_grid_point.py"


rule select_grid_point:
    input:
        grid_files,
    output:
        PATHS.selection,
    log:
        "logs/select_grid_point/{mode}/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    params:
        sole_point=lambda wc: sole_point(mode_grid(wc.mode, wc.dataset)),
    script:
        "../scripts/select_grid_point.py"


rule train_final:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split=PATHS.split,
        selection=PATHS.selection,
        images=image_cache,
    output:
        result=PATHS.final_result,
        predictions=PATHS.final_predictions,
    log:
        "logs/train_final/{mode}/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=600,
        mem_mb=16000,
    params:
        model=model_params,
        dataset=dataset_params,
        settings=run_settings,
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.final_checkpoint, wc),
    script:
        "../scripts/train_final.py"


# The bit mode: BiT-HyperRule fine-tuning (transferbench.train.bit), one job per seed and no grid; the median run is
# the mode's result.
rule train_bit:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split=PATHS.split,
        images=bit_image_cache,
    output:
        result=PATHS.bit_run,
        predictions=PATHS.bit_run_predictions,
    log:
        "logs/train_bit/{model}/{dataset}/run{run}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=600,
        mem_mb=16000,
    params:
        model=model_params,
        dataset=dataset_params,
        settings=bit_params,
        seed=config["seed"],
        checkpoint=lambda wc: path(PATHS.bit_run_checkpoint, wc),
    script:
        "../scripts/train_bit.py"


rule pick_bit_median:
    input:
        unpack(bit_run_files),
    output:
        result=PATHS.bit_result,
        predictions=PATHS.bit_predictions,
    log:
        "logs/pick_bit_median/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/pick_bit_median.py"
