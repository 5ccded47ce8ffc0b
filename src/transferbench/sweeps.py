"""What a config's `sweeps` section expands to: the extra runs of the dataset-size study (training-set subsets,
Kornblith et al. Fig. 9 and BiT's few-shot transfer), of the training-budget study (Fig. 8) and of the schedule study
(Rethinking ImageNet Pre-training: from scratch with BatchNorm, GroupNorm or GN + WS at 1x, 2x, 4x ... the base
schedule, against fine-tuning at the same multiples) and of the reuse study (Vasconcelos et al. 2022: between the
linear probe and full fine-tuning, heads of growing capacity on the frozen cached features and fine-tuning of the
last k stages only).

Each run is a (study, model, dataset, mode, variant); the variant names the subset (`n4-d0`: 4 examples per class,
draw 0; `nall-d0`: the whole train split), the budget (`steps152`), the schedule (`x2-groupnorm`: twice the mode's
steps, GroupNorm), the head (`mlp2-w512`, mode `head`: transferbench.probe.heads) or the trainable stages (`last2`,
mode finetune: the last 2 stages and the head train, the rest is frozen, BatchNorm statistics included). A run gets
its mode's settings for its dataset (transferbench.config.training_settings), then the sweep's own overrides for the
mode (a smaller grid, say), then, for a budget, `steps` = the budget with `schedule_multiplier` 1: the cosine
schedule spans exactly that many steps; for a schedule, `schedule_multiplier` = the multiple (the cosine schedule
spans multiple x steps) and `norm`; for trainable stages, `trainable_stages`. Every run is independent, with its own
grid search, selection and final fit (the paper's protocol).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from transferbench.config import _merge, named_points, training_settings

STUDIES = ("dataset_size", "budgets", "schedules", "reuse")
SWEPT_MODES = ("linear", "finetune", "scratch")  # the dataset-size sweep's modes (knn and bit are not swept)
TRAIN_MODES = ("finetune", "scratch")
PROBE_MODES = ("linear", "head")  # runs on cached features; the others are training jobs
SUBSET = re.compile(r"n(?P<k>\d+|all)-d(?P<draw>\d+)")
BUDGET = re.compile(r"steps(?P<steps>\d+)")
SCHEDULE = re.compile(r"x(?P<multiple>\d+(?:\.\d+)?)-(?P<norm>batchnorm|groupnorm|groupnorm_ws)")
STAGES = re.compile(r"last(?P<k>\d+)")
HEAD = re.compile(r"mlp(?P<layers>\d+)-w(?P<width>\d+)")


@dataclass(frozen=True)
class SweepRun:
    study: str  # dataset_size | budgets | schedules | reuse
    model: str
    dataset: str
    mode: str  # linear | finetune | scratch (budgets: finetune | scratch; reuse: head | finetune)
    variant: str  # n4-d0 | nall-d0 | steps152 | x2-groupnorm | mlp2-w512 | last2

    @property
    def trained(self) -> bool:
        """A training job's run (grid jobs, selection, final fit), not a probe's on cached features."""
        return self.mode not in PROBE_MODES


def subset_name(examples_per_class: int | None, draw: int) -> str:
    """'n4-d0' (4 examples per class, draw 0); 'nall-d0' for the whole train split (examples_per_class None)."""
    return f"n{'all' if examples_per_class is None else examples_per_class}-d{draw}"


def parse_subset_name(name: str) -> tuple[int | None, int]:
    """(examples per class, or None for all; draw) of a subset name."""
    match = SUBSET.fullmatch(name)
    if not match:
        raise ValueError(f"subset name {name!r}: expected n<examples per class>-d<draw> (n4-d0) or nall-d0")
    return (None if match["k"] == "all" else int(match["k"])), int(match["draw"])


def budget_name(steps: int) -> str:
    return f"steps{steps}"


def parse_budget_name(name: str) -> int:
    match = BUDGET.fullmatch(name)
    if not match:
        raise ValueError(f"budget name {name!r}: expected steps<number of steps> (steps152)")
    return int(match["steps"])


def schedule_name(multiple: float, norm: str) -> str:
    """'x2-groupnorm': twice the mode's steps, GroupNorm (`multiple` printed as %g)."""
    return f"x{multiple:g}-{norm}"


def parse_schedule_name(name: str) -> tuple[float, str]:
    match = SCHEDULE.fullmatch(name)
    if not match:
        raise ValueError(f"schedule name {name!r}: expected x<multiple>-<norm> (x2-groupnorm)")
    return float(match["multiple"]), match["norm"]


def head_name(hidden_layers: int, width: int) -> str:
    """'mlp2-w512': 2 hidden layers of 512 units (transferbench.probe.heads)."""
    return f"mlp{hidden_layers}-w{width}"


def parse_head_name(name: str) -> tuple[int, int]:
    match = HEAD.fullmatch(name)
    if not match:
        raise ValueError(f"head name {name!r}: expected mlp<hidden layers>-w<width> (mlp2-w512)")
    return int(match["layers"]), int(match["width"])


def stages_name(trainable_stages: int) -> str:
    """'last2': the last 2 stages (and the head) trainable."""
    return f"last{trainable_stages}"


def parse_stages_name(name: str) -> int:
    match = STAGES.fullmatch(name)
    if not match:
        raise ValueError(f"trainable-stages name {name!r}: expected last<stages> (last2)")
    return int(match["k"])


def examples_per_class(sizes) -> list[int | None]:
    """The sizes of one dataset's entry: a list (integers and 'all', kept in order) or {doubling_to: N} (1, 2, 4, ...
    up to N, with N itself when it is not a power of two). 'all' is None."""
    if isinstance(sizes, dict):
        top = sizes["doubling_to"]
        series = [2**i for i in range(top.bit_length()) if 2**i <= top]
        return series + ([top] if series[-1] != top else [])
    return [None if s == "all" else int(s) for s in sizes]


def _enabled(config: dict, study: str) -> dict | None:
    section = config.get("sweeps", {}).get(study)
    return section if section and section.get("enabled", True) else None


def sweep_runs(config: dict) -> list[SweepRun]:
    """Every run the enabled sweeps of `config` add, in a stable order."""
    runs = []
    sweep = _enabled(config, "dataset_size")
    if sweep:
        for model, mode in itertools.product(sweep.get("models") or list(config["models"]),
                                             sweep.get("modes") or [m for m in config["modes"] if m in SWEPT_MODES]):
            for dataset, sizes in sweep["examples_per_class"].items():
                for k in examples_per_class(sizes):
                    for draw in range(1 if k is None else sweep.get("draws", 3)):  # 'all' is the same every draw
                        runs.append(SweepRun("dataset_size", model, dataset, mode, subset_name(k, draw)))
    sweep = _enabled(config, "budgets")
    if sweep:
        for model, dataset in itertools.product(sweep.get("models") or list(config["models"]),
                                                sweep.get("datasets") or list(config["datasets"])):
            for mode, budgets in sweep["steps"].items():
                runs += [SweepRun("budgets", model, dataset, mode, budget_name(s)) for s in budgets]
    sweep = _enabled(config, "schedules")
    if sweep:
        for model, dataset in itertools.product(sweep.get("models") or list(config["models"]),
                                                sweep.get("datasets") or list(config["datasets"])):
            for mode, multiples in sweep["multiples"].items():
                norms = sweep.get("norms", ["batchnorm"]) if mode == "scratch" else ["batchnorm"]
                runs += [SweepRun("schedules", model, dataset, mode, schedule_name(m, norm))
                         for norm in norms for m in multiples]
    sweep = _enabled(config, "reuse")
    if sweep:
        heads = sweep["heads"]
        for model, dataset in itertools.product(sweep.get("models") or list(config["models"]),
                                                sweep.get("datasets") or list(config["datasets"])):
            runs += [SweepRun("reuse", model, dataset, "head", head_name(layers, heads["width"]))
                     for layers in heads["hidden_layers"]]
            runs += [SweepRun("reuse", model, dataset, "finetune", stages_name(k)) for k in sweep["trainable_stages"]]
    return runs


def _sweep_mode_settings(config: dict, study: str, mode: str, dataset: str) -> dict:
    """The mode's settings for the dataset <- the sweep's overrides for the mode."""
    return _merge(training_settings(config, mode, dataset), config["sweeps"][study].get(mode, {}))


def sweep_settings(config: dict, study: str, mode: str, dataset: str, variant: str) -> dict:
    """Training settings (with the grid) of one sweep run: the mode's for the dataset <- the sweep's overrides for the
    mode <- the budget's steps (schedule multiplier 1), or the schedule's multiple and norm."""
    settings = _sweep_mode_settings(config, study, mode, dataset)
    if study == "budgets":
        settings.update(steps=parse_budget_name(variant), schedule_multiplier=1)
    if study == "schedules":
        multiple, norm = parse_schedule_name(variant)
        settings.update(schedule_multiplier=multiple, norm=norm)
    if study == "reuse":
        settings.update(trainable_stages=parse_stages_name(variant))
    return settings


def sweep_grid_points(config: dict, study: str, mode: str, dataset: str) -> dict[str, dict]:
    """Grid points of a sweep's runs of `mode` on `dataset`, by name (as transferbench.config.grid_points)."""
    return named_points(_sweep_mode_settings(config, study, mode, dataset)["grid"])


def sweep_problems(config: dict) -> list[str]:
    """Names a sweep uses that the study does not define, and sizes a dataset cannot have, each naming the key."""
    problems = []
    models, datasets = list(config["models"]), list(config["datasets"])
    for study in STUDIES:
        sweep = config.get("sweeps", {}).get(study)
        if not sweep:
            continue
        for model in sweep.get("models", []):
            if model not in models:
                problems.append(f"config key 'sweeps.{study}.models': {model!r} is not a model of the study; "
                                f"valid: {', '.join(models)}")
        named = list(sweep["examples_per_class"]) if study == "dataset_size" else sweep.get("datasets", [])
        if study == "reuse" and "finetune" not in config["modes"] and sweep.get("trainable_stages"):
            problems.append("config key 'sweeps.reuse.trainable_stages': partial fine-tuning is compared with full "
                            "fine-tuning: add finetune to modes (or set trainable_stages: [])")
        if study == "reuse" and "linear" not in config["modes"]:
            problems.append("config key 'sweeps.reuse': the heads are compared with the linear head: add linear to "
                            "modes")
        for dataset in named:
            if dataset not in datasets:
                key = "examples_per_class" if study == "dataset_size" else "datasets"
                problems.append(f"config key 'sweeps.{study}.{key}': {dataset!r} is not a dataset of the study; "
                                f"valid: {', '.join(datasets)}")
            elif study == "dataset_size" and config["datasets"][dataset].get("metric") == "map_11point":
                problems.append(f"config key 'sweeps.dataset_size.examples_per_class.{dataset}': a multi-label "
                                "dataset has no class-balanced subsets (the paper's Fig. 9 leaves VOC 2007 out); "
                                "remove it")
    return problems

