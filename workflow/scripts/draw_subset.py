from transferbench.data.splits import Split
from transferbench.data.subsets import draw_subset
from transferbench.sweeps import parse_subset_name
from transferbench.workflow import job_context

with job_context(snakemake):
    examples_per_class, draw = parse_subset_name(snakemake.wildcards.subset)
    subset = draw_subset(Split.load(snakemake.input.split), examples_per_class, draw, snakemake.params.seed)
    subset.save(snakemake.output[0])
