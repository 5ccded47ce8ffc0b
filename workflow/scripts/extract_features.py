from transferbench.data.splits import DatasetSpec
from transferbench.features.extract import extract_to_hdf5
from transferbench.models.spec import ModelSpec
from transferbench.workflow import job_context

with job_context(snakemake):
    s = snakemake.params.settings
    extract_to_hdf5(ModelSpec.from_config(snakemake.wildcards.model, snakemake.params.model),
                    DatasetSpec.from_config(snakemake.wildcards.dataset, snakemake.params.dataset),
                    split_file=snakemake.input.split, out=snakemake.output[0], batch_size=s["batch_size"],
                    dtype=s["dtype"], num_workers=s["num_workers"],
                    images_file=snakemake.input.images)
