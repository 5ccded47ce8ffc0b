"""A study checked before any job runs: the config against its schema, its names against the libraries' registries
(timm, torchvision) and the paper's datasets, and every data path it names against the disk. Each problem names the
config key and what would be valid."""

from __future__ import annotations

from pathlib import Path

from transferbench.analysis.results import (
    COLUMNS,
    DETECTION_COLUMNS,
    OPTIONAL,
    REUSE_COLUMNS,
    RUN_COLUMNS,
    SWEEP_COLUMNS,
)
from transferbench.config import SCHEMA, ConfigError, training_settings, validate_schema
from transferbench.data.paper import PAPER_DATASETS
from transferbench.detection.plan import METRICS as DETECTION_METRICS
from transferbench.detection.plan import detection_problems
from transferbench.hints import PREFETCH_HINT
from transferbench.sweeps import sweep_problems

# the results table's own columns: tags may not take them
TABLE_COLUMNS = set(COLUMNS + SWEEP_COLUMNS + RUN_COLUMNS + REUSE_COLUMNS + DETECTION_COLUMNS + OPTIONAL)


def validate_config(config: dict, schema_path=SCHEMA, cross_references: bool = True) -> dict:
    """Check `config` against the schema and the cross-references; fill defaults in place and return it.

    `cross_references=False` skips the checks that need timm's registry (and so a torch import): for cluster jobs,
    whose Snakemake process re-reads a config the main process has already checked.

    Raises ConfigError listing every problem found, each naming the key and the valid choices.
    """
    problems = validate_schema(config, schema_path)
    if not problems:
        problems = _fill_dataset_metrics(config)
    if not problems:
        problems = sweep_problems(config) + detection_problems(config)
    if not problems and cross_references:
        problems = _cross_reference_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def _fill_dataset_metrics(config: dict) -> list[str]:
    """The paper's datasets default to the paper's metric (Table 1); every other source must name one. Detection
    datasets default to VOC 2007's mAP for voc2007 and COCO's AP otherwise."""
    problems = []
    for name, entry in config["datasets"].items():
        if "metric" not in entry:
            if entry["source"] in PAPER_DATASETS:
                entry["metric"] = PAPER_DATASETS[entry["source"]].metric
            else:
                problems.append(f"config key 'datasets.{name}.metric': required for source '{entry['source']}'; "
                                "valid choices: top1, mean_per_class, map_11point")
    for entry in (config.get("detection") or {}).get("datasets", {}).values():  # VOC 2007's, else COCO's AP
        entry.setdefault("metric", DETECTION_METRICS.get(entry["source"], "coco_ap"))
    return problems


def _cross_reference_problems(config: dict) -> list[str]:
    from transferbench.models.spec import model_problems  # imports timm: only once the schema has passed

    problems = []
    if "upstream" in config and "upstream" in config["datasets"]:
        problems.append("config key 'datasets.upstream': the name 'upstream' is reserved for the upstream task")
    for name, entry in config["models"].items():
        if entry.get("pretrained") == "upstream" and "upstream" not in config:
            problems.append(f"config key 'models.{name}.pretrained': 'upstream' needs an 'upstream' section")
        problems += [f"config key 'models.{name}': {p}"
                     for p in model_problems(entry, top1_measured="imagenet_val" in config)]
    if config.get("imagenet_val") and not Path(config["imagenet_val"]).is_dir():
        problems.append(f"config key 'imagenet_val': {config['imagenet_val']} is not a folder; expected "
                        "<wnid>/<image>.JPEG class folders of the ImageNet validation set")
    for name, entry in config["datasets"].items():
        source = entry["source"]
        if source == "generated" and "generator" not in entry:
            problems.append(f"config key 'datasets.{name}.generator': required for source 'generated'")
        if source == "imagefolder" and "root" not in entry:
            problems.append(f"config key 'datasets.{name}.root': required for source 'imagefolder' "
                            "(a folder holding train/ and test/, optionally val/)")
        if source == "csv":
            for key, what in (("root", "the folder the CSV's paths are relative to"),
                              ("split_file", "a CSV file with a header row path,label,split")):
                if key not in entry:
                    problems.append(f"config key 'datasets.{name}.{key}': required for source 'csv' ({what})")
    for name, entry in config["models"].items():
        clashing = sorted(set(entry.get("tags", {})) & TABLE_COLUMNS)
        if clashing:
            problems.append(f"config key 'models.{name}.tags': {', '.join(clashing)} would overwrite the results "
                            "table's own column(s); choose other tag names (taken: "
                            f"{', '.join(sorted(TABLE_COLUMNS))})")
    ablation = config["ablation"]
    if ablation["enabled"]:
        tagged = {name for name, entry in config["models"].items()
                  if {ablation["group_tag"], ablation["setting_tag"]} <= set(entry.get("tags", {}))}
        if not tagged:
            problems.append(f"config key 'ablation.enabled': no model carries both tags {ablation['group_tag']!r} "
                            f"and {ablation['setting_tag']!r} (models.<name>.tags)")
        for name in sorted(tagged):
            setting = config["models"][name]["tags"][ablation["setting_tag"]]
            if str(setting) not in map(str, ablation["order"]):
                problems.append(f"config key 'models.{name}.tags.{ablation['setting_tag']}': {setting!r} is not in "
                                f"ablation.order ({', '.join(map(str, ablation['order']))})")
    space = config["feature_space"]
    if space["enabled"]:
        if not {"linear", "knn"} & set(config["modes"]):
            problems.append("config key 'feature_space.enabled': the feature space is measured on cached features; "
                            "add mode linear or knn to 'modes'")
        tsne = space["tsne"]
        for model in tsne.get("models", []):
            if model not in config["models"]:
                problems.append(f"config key 'feature_space.tsne.models': {model!r} is not a model of the study; "
                                f"valid: {', '.join(config['models'])}")
        dataset = tsne.get("dataset")
        if dataset is not None and dataset not in config["datasets"]:
            problems.append(f"config key 'feature_space.tsne.dataset': {dataset!r} is not a dataset of the study; "
                            f"valid: {', '.join(config['datasets'])}")
        elif dataset is None and all(d.get("metric") == "map_11point" for d in config["datasets"].values()):
            problems.append("config key 'feature_space.tsne.dataset': every dataset of the study is multi-label; a "
                            "t-SNE map is coloured by one class per image: add a single-label dataset")
        elif dataset is not None and config["datasets"][dataset].get("metric") == "map_11point":
            problems.append(f"config key 'feature_space.tsne.dataset': {dataset!r} is multi-label; a t-SNE map is "
                            "coloured by one class per image: choose a single-label dataset")
    if "bit" in config["modes"]:
        from transferbench.train.bit import dataset_image_side

        for model in config["bit"].get("models", []) + config["bit"]["largest_models"]:
            if model not in config["models"]:
                problems.append(f"config key 'bit': {model!r} is not a model of the study; valid: "
                                f"{', '.join(config['models'])}")
        for name, entry in config["datasets"].items():
            try:
                dataset_image_side(name, entry)
            except ValueError as error:
                problems.append(str(error))
    for mode in ("finetune", "scratch"):
        if mode in config["modes"]:
            for dataset in config["datasets"]:
                grid = training_settings(config, mode, dataset)["grid"]
                if not grid["lr"] or not grid["weight_decay"]:
                    problems.append(f"config key '{mode}.grid': needs at least one lr and one weight_decay")
    return problems


def missing_data(config: dict) -> tuple[list[str], list[str]]:
    """Data paths the config names that are not on disk, checked before any job runs: (the researcher's own files:
    imagefolder and csv roots, split files, checkpoints; the paper's datasets, whose folders under their root
    `prefetch` fills). Paths the workflow writes itself (generated data, upstream checkpoints) are not checked."""
    own, fetchable = [], []
    for name, entry in config["models"].items():
        checkpoint = entry.get("checkpoint")
        if entry.get("pretrained") != "upstream" and checkpoint and not Path(checkpoint).is_file():
            own.append(f"config key 'models.{name}.checkpoint': {checkpoint} is not a file (paths are relative to the "
                       "working directory)")
    for name, entry in config["datasets"].items():
        source, root = entry["source"], entry.get("root")
        if source == "imagefolder":
            missing = [f"{root}/{s}" for s in ("train", "test") if not (Path(root) / s).is_dir()]
            if missing:
                own.append(f"config key 'datasets.{name}.root': {' and '.join(missing)} not found; expected "
                           f"{root}/train/<class>/<image>, {root}/test/<class>/<image> (val/ optional)")
        elif source == "csv":
            if not Path(root).is_dir():
                own.append(f"config key 'datasets.{name}.root': {root} is not a folder (the folder the split "
                           "file's paths are relative to)")
            if not Path(entry["split_file"]).is_file():
                own.append(f"config key 'datasets.{name}.split_file': {entry['split_file']} is not a file; expected "
                           "a CSV with a header row path,label,split")
        elif source in PAPER_DATASETS:
            d, root = PAPER_DATASETS[source], Path(root or config["data_root"])
            if not (root / d.folder).is_dir():
                how = d.fetch if d.fetch.startswith("by hand") else PREFETCH_HINT
                fetchable.append(f"config key 'datasets.{name}': {d.title} is not under {root} ({root / d.folder} is "
                                 f"missing); expected layout: {d.layout}; to get it: {how}")
    detection = config.get("detection") or {}
    for name, entry in detection.get("datasets", {}).items() if detection.get("enabled", True) else ():
        for part in ("train", "test") if entry["source"] == "coco" else ():
            for key, is_there in (("instances", Path.is_file), ("images", Path.is_dir)):
                given = entry.get(part, {}).get(key)
                if given and not is_there(Path(given)):
                    own.append(f"config key 'detection.datasets.{name}.{part}.{key}': {given} is not a "
                               f"{'file' if key == 'instances' else 'folder'} (expected a COCO-format instances.json "
                               "and the folder of its images)")
        if entry["source"] == "voc2007":
            root = Path(entry.get("root") or config["data_root"])
            d = PAPER_DATASETS["voc2007"]
            if not (root / d.folder).is_dir():
                fetchable.append(f"config key 'detection.datasets.{name}': {d.title} is not under {root}; expected "
                                 f"layout: {d.layout}; to get it: {PREFETCH_HINT}")
    return own, fetchable
