from transferbench.analysis.feature_space import feature_space_table
from transferbench.atomic import atomic_path
from transferbench.workflow import job_context

with job_context(snakemake):
    files = {tuple(key.split("/", 1)): path for key, path in snakemake.params.files.items()}
    table = feature_space_table(files, snakemake.params.split)
    with atomic_path(snakemake.output[0]) as tmp:
        table.to_csv(tmp, index=False)
