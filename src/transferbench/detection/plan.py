"""What a config's `detection` section expands to (read while the workflow is planned: no torch here): the runs
(model x dataset x backbone state x detector capacity), each run's training settings and grid, and the section's
cross-reference problems.

A run's settings: DEFAULT_TRAINING <- the section's `train` settings <- the state's overrides (`scratch:` for a
longer schedule, as Rethinking ImageNet Pre-training trains from scratch for longer) <- the dataset's image sizes
(`min_size`, `max_size`; a generated dataset's default both to its image size).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from transferbench.config import _merge, named_points

# The paper-scale protocol (Detectron's PASCAL VOC schedule: batch 16, 18,000 iterations, lr 0.02 with warm-up); a
# config's detection.train overrides any key.
DEFAULT_TRAINING = {
    "grid": {"lr": [0.01, 0.02], "weight_decay": [0.0001]}, "steps": 18000, "batch_size": 16, "momentum": 0.9,
    "warmup_steps": 500, "pyramid_stages": 3, "anchor_scale": 8, "rois_per_image": 512, "detections_per_image": 100,
    "checkpoint_every": 1000, "device": "auto",
}
METRICS = {"voc2007": "voc07_map50"}  # a dataset's default metric by source; coco_ap otherwise


@dataclass(frozen=True)
class DetectionRun:
    model: str
    dataset: str
    state: str  # frozen | finetune | scratch
    capacity: str  # capacity_name(...)


def capacity_name(capacity: dict) -> str:
    """'fpn64-conv2' (FPN width 64, a box head of 2 convolutions), '-fc256' where the box head's fully connected
    width is not torchvision's 1024, '-rpn2' where the RPN head has 2 convolutions, not 1."""
    name = f"fpn{capacity['fpn_channels']}-conv{capacity.get('head_convs', 0)}"
    name += f"-fc{capacity['head_fc']}" if capacity.get("head_fc", 1024) != 1024 else ""
    return name + (f"-rpn{capacity['rpn_convs']}" if capacity.get("rpn_convs", 1) != 1 else "")


def enabled(config: dict) -> bool:
    section = config.get("detection")
    return bool(section) and section.get("enabled", True)


def capacities(config: dict) -> dict[str, dict]:
    """{capacity name: capacity} in config order."""
    return {capacity_name(c): c for c in config["detection"]["capacities"]}


def detection_runs(config: dict) -> list[DetectionRun]:
    if not enabled(config):
        return []
    section = config["detection"]
    return [DetectionRun(m, d, s, c) for m, d, s, c in itertools.product(
        section.get("models") or list(config["models"]), list(section["datasets"]), section["states"],
        list(capacities(config)))]


def detection_settings(config: dict, state: str, dataset: str) -> dict:
    """A run's training settings, with its grid (module docstring)."""
    section = config["detection"]
    settings = _merge(DEFAULT_TRAINING, section.get("train", {}))
    if state == "scratch":
        settings = _merge(settings, section.get("scratch", {}))
    entry = section["datasets"][dataset]
    side = entry.get("generator", {}).get("image_size")
    settings["min_size"] = entry.get("min_size", side or 800)
    settings["max_size"] = entry.get("max_size", side or 1333)
    return settings


def detection_grid(config: dict, state: str, dataset: str) -> dict[str, dict]:
    """{point name: {'lr', 'weight_decay'}} of a state's runs on a dataset."""
    return named_points(detection_settings(config, state, dataset)["grid"])


def detection_problems(config: dict) -> list[str]:
    """Names the detection section uses that the study does not define, each naming its key."""
    if not enabled(config):
        return []
    section, problems = config["detection"], []
    for model in section.get("models", []):
        if model not in config["models"]:
            problems.append(f"config key 'detection.models': {model!r} is not a model of the study; valid: "
                            f"{', '.join(config['models'])}")
    names = [capacity_name(c) for c in section["capacities"]]
    if len(set(names)) != len(names):
        problems.append(f"config key 'detection.capacities': two entries describe the same detector ({names}); "
                        "make each capacity different")
    for name, entry in section["datasets"].items():
        if entry["source"] == "coco":
            for part in ("train", "test"):
                if not {"instances", "images"} <= set(entry.get(part, {})):
                    problems.append(f"config key 'detection.datasets.{name}.{part}': a coco dataset needs "
                                    f"{part}: {{instances: <instances.json>, images: <image folder>}}")
        if entry["source"] == "generated" and "generator" not in entry:
            problems.append(f"config key 'detection.datasets.{name}.generator': a generated dataset needs its "
                            "generator settings (train_images, test_images, image_size, ...)")
    return problems

