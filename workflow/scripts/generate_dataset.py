from transferbench.data.synthetic import generate_imagefolder
from transferbench.workflow import job_context

with job_context(snakemake):
    g = dict(snakemake.params.generator)
    generate_imagefolder(snakemake.output[0], g.pop("kind"), seed=snakemake.params.seed, **g)
