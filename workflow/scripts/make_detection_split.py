from transferbench.detection.data import DetectionDatasetSpec, make_detection_split
from transferbench.workflow import job_context

with job_context(snakemake):
    spec = DetectionDatasetSpec.from_config(snakemake.wildcards.detset, snakemake.params.dataset)
    make_detection_split(spec, snakemake.output[0], snakemake.params.seed)
