"""Study config: the schema and its defaults, and the per-job slices that jobs receive. (The checks that need the
other stages, names against timm's registry and data on disk, are in transferbench.checks.)

A job gets only its own slice (its model's entry, its dataset's entry, its mode's training settings), so adding a
model changes no other job's parameters and Snakemake reruns nothing else.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import jsonschema
import numpy as np
import yaml

from transferbench.hints import did_you_mean

# The schema ships inside the package (not under workflow/schemas/ as in Snakemake's template): a non-editable install
# validates configs too. Every key is described in it and in config/README.md.
SCHEMA = Path(__file__).with_name("config.schema.yaml")

# The paper's training protocol (Kornblith et al. 2019, section 3 and appendix; README Conventions). Grid details
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
    "grid": {"lr": np.logspace(-3, 0, 7).round(8).tolist(),
             "weight_decay": np.logspace(-5, -1.5, 8).round(10).tolist()},
    "steps": 40000,
}
MODES = ("linear", "knn", "finetune", "scratch")


class ConfigError(ValueError):
    """A config problem, with every message naming the key and what would be valid."""


def load_config(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


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
        return (f"config key '{key}': unknown key(s) {', '.join(map(repr, extra))}; "
                f"valid keys: {', '.join(allowed)}{hints}")
    return f"config key '{key}': {error.message}"


def validate_schema(config: dict, schema_path=SCHEMA) -> list[str]:
    """Check `config` against the schema and fill the schema's defaults in place; the problems found, each naming the
    key and what would be valid (empty when there are none)."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    return [_describe(e) for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path)))]


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


def upstream_settings(config: dict, model: str | None = None) -> dict:
    """Training settings of the demo's upstream pretraining (from-scratch protocol, no grid), with `model`'s own
    `upstream` overrides (the regularizer ablation's label smoothing and aux weight)."""
    settings = _merge(PAPER_TRAINING["scratch"], config["upstream"]["train"])
    return _merge(settings, config["models"][model].get("upstream", {})) if model else settings


def grid_point_name(lr: float, weight_decay: float) -> str:
    return f"lr{lr:g}_wd{weight_decay:g}"


def named_points(grid: dict) -> dict[str, dict]:
    """A grid's points by name: {'lr0.01_wd1e-05': {'lr': 0.01, 'weight_decay': 1e-05}}."""
    return {grid_point_name(lr, wd): {"lr": lr, "weight_decay": wd}
            for lr, wd in itertools.product(grid["lr"], grid["weight_decay"])}


def grid_points(config: dict, mode: str, dataset: str) -> dict[str, dict]:
    """Grid points of `mode` on `dataset`, by name (named_points)."""
    return named_points(training_settings(config, mode, dataset)["grid"])


def linear_grid(config: dict) -> list[float]:
    """The linear probe's weight-decay grid: `num` log-spaced values from wd_min to wd_max (paper: 45, 1e-6..1e5)."""
    s = config["linear"]
    return np.logspace(np.log10(s["wd_min"]), np.log10(s["wd_max"]), s["num"]).tolist()
