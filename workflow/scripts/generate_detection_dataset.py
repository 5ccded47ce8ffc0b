from transferbench.detection.shapes import write_shapes_detection
from transferbench.workflow import job_context

with job_context(snakemake):
    write_shapes_detection(snakemake.output[0], seed=snakemake.params.seed, **snakemake.params.generator)
