"""Study config: validation before any job runs, and the per-job slices that jobs receive.

A job gets only its own slice (its model's entry, its dataset's entry, its mode's training settings), so adding a
model changes no other job's parameters and Snakemake reruns nothing else.
"""

from __future__ import annotations

import copy
import difflib
import itertools
from pathlib import Path

import jsonschema
import numpy as np
import yaml

# The schema lives with the workflow; the Snakefile passes its path, this default serves a repository checkout.
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# The paper's training protocol (Kornblith et al. 2019, section 3 and appendix; see paper-facts.md). Grid details
# the paper leaves to SimCLR's appendix are defaults here, not constants: every one is overridable in config.
PAPER_TRAINING = {
    "finetune": {
        "grid": {
            "lr": np.logspace(-4, -1, 7).round(8).tolist(),
            "weight_decay": [0.0] + np.logspace(-6, -3, 7).round(10).tolist(),
        },
        "weight_decay_divided_by_lr": True,
        "steps": 20000,
        "schedule_multiplier": 1,
        "batch_size": 256,
        "momentum": 0.9,
        "nesterov": True,
        "crop_scale": [0.08, 1.0],
        "flip": True,
        "bn_momentum_rule": True,
        "norm": "batchnorm",
        "eval_every": 1000,
        "checkpoint_every": 500,
        "num_workers": 4,
    },
}
PAPER_TRAINING["scratch"] = {
    **PAPER_TRAINING["finetune"],
    # SimCLR's from-scratch baseline (unverified for Kornblith et al.): wider learning rates and decays, 40k steps.
    "grid": {"lr": np.logspace(-3, 0, 7).round(8).tolist(), "weight_decay": np.logspace(-5, -1.5, 8).round(10).tolist()},
    "steps": 40000,
}
MODES = ("linear", "finetune", "scratch")


class ConfigError(ValueError):
    """A config problem, with every message naming the key and what would be valid."""


def load_config(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def did_you_mean(word, choices) -> str:
    """'; did you mean ...?' naming up to three close matches of `word` among `choices`, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _with_defaults(validator_class):
    """A jsonschema validator that also fills in the schema's defaults (the recipe from the jsonschema FAQ)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _describe(error) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "enum":
        return (f"config key '{key}': {error.instance!r} is not valid; valid choices: "
                f"{', '.join(map(str, error.validator_value))}{did_you_mean(error.instance, error.validator_value)}")
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        hints = "".join(did_you_mean(e, allowed) for e in extra)
        return f"config key '{key}': unknown key(s) {', '.join(map(repr, extra))}; valid keys: {', '.join(allowed)}{hints}"
    return f"config key '{key}': {error.message}"


def validate_config(config: dict, schema_path=SCHEMA, cross_references: bool = True) -> dict:
    """Check `config` against the schema and the cross-references; fill defaults in place and return it.

    `cross_references=False` skips the checks that need timm's registry (and so a torch import): for cluster jobs,
    whose Snakemake process re-reads a config the main process has already checked.

    Raises ConfigError listing every problem found, each naming the key and the valid choices.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    problems = [_describe(e) for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))]
    if not problems:
        problems = _fill_dataset_metrics(config)
    if not problems and cross_references:
        problems = _cross_reference_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def _fill_dataset_metrics(config: dict) -> list[str]:
    """The paper's datasets default to the paper's metric (Table 1); every other source must name one."""
    from .paper_datasets import PAPER_DATASETS

    problems = []
    for name, entry in config["datasets"].items():
        if "metric" not in entry:
            if entry["source"] in PAPER_DATASETS:
                entry["metric"] = PAPER_DATASETS[entry["source"]].metric
            else:
                problems.append(f"config key 'datasets.{name}.metric': required for source '{entry['source']}'; "
                                "valid choices: top1, mean_per_class, map_11point")
    return problems


def _cross_reference_problems(config: dict) -> list[str]:
    from .models import model_problems  # imports timm: only once the schema has passed

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
    from .paper_datasets import PAPER_DATASETS
    from .prefetch import PREFETCH_HINT

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
    return own, fetchable


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def sorted_keys(value):
    """`value` with every dict's keys sorted (lists keep their order). Snakemake's params trigger compares params as
    text, so a config in canonical key order keeps reordering keys in the YAML from rerunning any job."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def training_settings(config: dict, mode: str, dataset: str | None = None) -> dict:
    """Settings of `mode` for `dataset`: paper defaults <- the config's mode section <- the dataset's override."""
    settings = _merge(PAPER_TRAINING[mode], config.get(mode, {}))
    if dataset is not None:
        settings = _merge(settings, config["datasets"][dataset].get(mode, {}))
    return settings


def upstream_settings(config: dict) -> dict:
    """Training settings of the demo's upstream pretraining (from-scratch protocol, no grid)."""
    return _merge(PAPER_TRAINING["scratch"], config["upstream"]["train"])


def grid_point_name(lr: float, weight_decay: float) -> str:
    return f"lr{lr:g}_wd{weight_decay:g}"


def grid_points(config: dict, mode: str, dataset: str) -> dict[str, dict]:
    """Grid points of `mode` on `dataset`, by name: {'lr0.01_wd1e-05': {'lr': 0.01, 'weight_decay': 1e-05}}."""
    grid = training_settings(config, mode, dataset)["grid"]
    return {grid_point_name(lr, wd): {"lr": lr, "weight_decay": wd}
            for lr, wd in itertools.product(grid["lr"], grid["weight_decay"])}


def linear_grid(config: dict) -> list[float]:
    """The linear probe's weight-decay grid: `num` log-spaced values from wd_min to wd_max (paper: 45, 1e-6..1e5)."""
    s = config["linear"]
    return np.logspace(np.log10(s["wd_min"]), np.log10(s["wd_max"]), s["num"]).tolist()
