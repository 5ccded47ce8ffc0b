from transferbench.analysis.detection import detection_correlations, detection_summary
from transferbench.analysis.results import read_table
from transferbench.atomic import atomic_path
from transferbench.workflow import job_context

with job_context(snakemake):
    summary = detection_summary(read_table(snakemake.input[0], study=None))
    for frame, out in ((summary, snakemake.output.summary),
                       (detection_correlations(summary, seed=snakemake.params.seed), snakemake.output.correlations)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
