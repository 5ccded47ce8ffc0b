# Upstream pretraining of the demo's model family on the generated upstream task (the demo's ImageNet).


rule pretrain_upstream:
    input:
        data="results/datasets/upstream",
    output:
        weights="results/upstream/{model}/weights.pth",
        metrics="results/upstream/{model}/metrics.json",
    params:
        model=lambda wc: config["models"][wc.model],
        settings=lambda wc: upstream_settings(config),
        seed=config["seed"],
        checkpoint=lambda wc: f"results/upstream/{wc.model}/resume.ckpt",
    threads: 1
    resources:
        runtime=240,
        mem_mb=8000,
    log:
        "logs/pretrain_upstream/{model}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/pretrain_upstream.py"
