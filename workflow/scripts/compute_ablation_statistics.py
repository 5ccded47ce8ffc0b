from transferbench.analysis.ablation import setting_means, step_tests
from transferbench.analysis.results import read_table
from transferbench.atomic import atomic_path
from transferbench.workflow import job_context

with job_context(snakemake):
    a = snakemake.params.ablation
    table = read_table(snakemake.input[0])
    for frame, out in ((setting_means(table, a["group_tag"], a["setting_tag"], a["order"]), snakemake.output.settings),
                       (step_tests(table, a["group_tag"], a["setting_tag"], a["order"]), snakemake.output.steps)):
        with atomic_path(out) as tmp:
            frame.to_csv(tmp, index=False)
