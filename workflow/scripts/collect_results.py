from transferbench.analysis.results import result_row, write_table
from transferbench.atomic import read_json
from transferbench.workflow import job_context

with job_context(snakemake):
    rows = []
    for r in snakemake.params.rows:
        top1 = read_json(r["top1_file"])["top1"] if r["top1_file"] else r["imagenet_top1"]
        n_train = read_json(r["split"])["n_train"]
        rows.append(result_row(r["model"], r["dataset"], r["mode"], r["result"], top1, n_train, r["predictions"]))
    write_table(rows, snakemake.output[0])
