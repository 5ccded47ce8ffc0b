# Optional (config imagenet_val): each model's ImageNet top-1 measured on the validation images, used in the
# results table instead of the config's imagenet_top1.


rule measure_imagenet_top1:
    input:
        unpack(model_inputs),
    output:
        PATHS.imagenet_top1,
    log:
        "logs/measure_imagenet_top1/{model}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=16000,
    params:
        model=model_params,
        imagenet_val=config.get("imagenet_val"),
        settings=config["features"],
    script:
        "../scripts/measure_imagenet_top1.py"
