from transferbench.analysis.results import detection_rows, result_row, write_table
from transferbench.atomic import read_json
from transferbench.data.splits import Split
from transferbench.data.subsets import Subset
from transferbench.sweeps import parse_schedule_name
from transferbench.workflow import job_context

with job_context(snakemake):
    rows, splits = [], {}
    for r in snakemake.params.rows:
        top1 = read_json(r["top1_file"])["top1"] if r["top1_file"] else r["imagenet_top1"]
        if r["study"] == "detection":  # one row per metric (transferbench.detection.metrics)
            rows += detection_rows(r["model"], r["dataset"], r["mode"], r["variant"], r["result"], top1,
                                   r["predictions"], r["tags"])
            continue
        n_train, sweep = read_json(r["split"])["n_train"], {}
        if r["subset"]:  # a dataset-size run: its subset's size; `all` recorded as its largest class
            split = splits.get(r["split"]) or splits.setdefault(r["split"], Split.load(r["split"]))
            subset = Subset.load(r["subset"], split)
            n_train = subset.n_train
            sweep = {"examples_per_class": subset.examples_per_class or subset.largest_class(split),
                     "draw": subset.draw}
        if r["study"] == "schedules":
            multiple, norm = parse_schedule_name(r["variant"])
            sweep = {"schedule": multiple, "norm": norm}
        rows.append(result_row(r["model"], r["dataset"], r["mode"], r["result"], top1, n_train, r["predictions"],
                               study=r["study"], tags=r["tags"], **sweep))
    write_table(rows, snakemake.output[0])
