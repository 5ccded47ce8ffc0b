import os

os.environ["HF_HUB_OFFLINE"] = "0"  # the one job that downloads; before huggingface_hub is imported

from transferbench.models.spec import ModelSpec  # noqa: E402
from transferbench.prefetch import prefetch  # noqa: E402
from transferbench.workflow import job_context  # noqa: E402

with job_context(snakemake):
    specs = [ModelSpec.from_config(name, entry) for name, entry in snakemake.params.models.items()]
    problems = prefetch(specs, snakemake.params.datasets, snakemake.params.data_root)
    if problems:
        raise SystemExit("prefetch could not get:\n  " + "\n  ".join(problems))
