# The finetune and scratch modes: one job per grid point (train -> val), a selection, and the final fit
# (train+val -> test). Checkpoints beside the outputs make a preempted job resume where it stopped.


rule train_grid_point:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split="results/splits/{dataset}.json",
        images=image_cache,
    output:
        "results/{mode}/{model}/{dataset}/grid/{point}.json",
    params:
        model=model_params,
        dataset=dataset_params,
        settings=run_settings,
        hparams=lambda wc: mode_grid(wc.mode, wc.dataset)[wc.point],
        seed=config["seed"],
        checkpoint=lambda wc: f"results/{wc.mode}/{wc.model}/{wc.dataset}/grid/{wc.point}.ckpt",
    threads: 1
    resources:
        runtime=600,
        mem_mb=16000,
    log:
        "logs/train_grid_point/{mode}/{model}/{dataset}/{point}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/train_grid_point.py"


rule select_grid_point:
    input:
        grid_files,
    output:
        "results/{mode}/{model}/{dataset}/selection.json",
    log:
        "logs/select_grid_point/{mode}/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/select_grid_point.py"


rule train_final:
    input:
        unpack(model_inputs),
        unpack(dataset_inputs),
        split="results/splits/{dataset}.json",
        selection="results/{mode}/{model}/{dataset}/selection.json",
        images=image_cache,
    output:
        result="results/{mode}/{model}/{dataset}/final.json",
        predictions="results/{mode}/{model}/{dataset}/predictions.npz",
    params:
        model=model_params,
        dataset=dataset_params,
        settings=run_settings,
        seed=config["seed"],
        checkpoint=lambda wc: f"results/{wc.mode}/{wc.model}/{wc.dataset}/final.ckpt",
    threads: 1
    resources:
        runtime=600,
        mem_mb=16000,
    log:
        "logs/train_final/{mode}/{model}/{dataset}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/train_final.py"
