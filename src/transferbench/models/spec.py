"""Model specs and model building, through timm.

A model is described by data, the way timm describes its own: a `ModelSpec` built from a config entry, with its
preprocessing taken from timm's pretrained_cfg unless the config overrides it. Weights come from the hub
(`name.tag`), from a local checkpoint file, or from the demo's own upstream pretraining (also a checkpoint).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
import timm
import torch
from torch import nn

from transferbench.hints import PREFETCH_HINT, did_you_mean
from transferbench.models import demo  # noqa: F401  (registers the demo architectures with timm)
from transferbench.models.tv_adapter import build_torchvision, torchvision_cfg, torchvision_problems

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the study. `timm` is 'arch.tag' for hub weights, or 'arch' with a checkpoint; torchvision models
    have `torchvision` ('name.WEIGHTS' or 'name') instead and an empty `timm`."""

    name: str
    timm: str
    pretrained: str  # 'hub' | 'checkpoint' | 'upstream'
    kwargs: dict = field(default_factory=dict)
    checkpoint: str | None = None
    imagenet_top1: float | None = None
    resolution: int | None = None
    crop_pct: float | None = None
    interpolation: str | None = None
    mean: tuple | None = None
    std: tuple | None = None
    torchvision: str | None = None
    label_offset: int | None = None  # ImageNet heads with a background class first: 1 (else from the pretrained cfg)

    @property
    def arch(self) -> str:
        return (self.torchvision or self.timm).split(".")[0]

    @property
    def tag(self) -> str | None:
        full = self.torchvision or self.timm
        return full.split(".", 1)[1] if "." in full else None

    @classmethod
    def from_config(cls, name: str, entry: dict, checkpoint: str | None = None) -> "ModelSpec":
        """Build from a config entry; `checkpoint` is the upstream checkpoint path for 'pretrained: upstream'."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in entry.items() if k in fields}
        values["pretrained"] = infer_weights_source(entry)
        values.setdefault("timm", "")
        if checkpoint is not None:
            values["checkpoint"] = str(checkpoint)
        for key in ("mean", "std"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(name=name, **values)

    def to_params(self) -> dict:
        """The spec as a job's params (plain data, without its name, which is the job's wildcard): what
        `from_config(name, params)` rebuilds. Given resolved, it carries the preprocessing, so a change of it (a new
        timm release's mean/std, say) reruns the model's jobs through Snakemake's params trigger."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "name"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}

    def with_preprocessing(self) -> "ModelSpec":
        """A copy with resolution, crop, interpolation and mean/std filled from the pretrained config where unset."""
        if None not in (self.resolution, self.crop_pct, self.interpolation, self.mean, self.std):
            return self  # already resolved: no registry lookup (or model build) again
        cfg = pretrained_cfg(self)
        return dataclasses.replace(
            self,
            resolution=self.resolution or int(cfg["input_size"][-1]),
            crop_pct=self.crop_pct or float(cfg.get("crop_pct") or 0.875),
            interpolation=self.interpolation or cfg.get("interpolation") or "bilinear",
            mean=tuple(self.mean or cfg["mean"]),
            std=tuple(self.std or cfg["std"]),
        )


def import_model_modules(paths) -> None:
    """Import the researcher's own model files (config key `model_modules`), so that their timm `register_model`
    calls run before any model is built. Each file is imported once per process."""
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"config key 'model_modules': {path} is not a file (paths are relative to the "
                                    "working directory)")
        name = f"transferbench_user_models.{path.stem}_{abs(hash(str(path.resolve())))}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise ImportError(f"config key 'model_modules': importing {path} failed: {type(error).__name__}: {error}") \
                from error
        log.info("imported model module %s", path)


def infer_weights_source(entry: dict) -> str:
    if "pretrained" in entry:
        return entry["pretrained"]
    if "checkpoint" in entry:
        return "checkpoint"
    return "hub"


def pretrained_cfg(spec: ModelSpec) -> dict:
    """timm's pretrained config for the spec: the tag's config for hub weights, else the architecture's default.
    torchvision models: their weights' transforms (or torchvision's defaults)."""
    if spec.torchvision:
        return torchvision_cfg(spec.torchvision)
    cfg = timm.models.get_pretrained_cfg(spec.timm if spec.tag is not None else spec.arch)
    if cfg is not None:
        return cfg.to_dict()
    model = timm.create_model(spec.arch, pretrained=False, **spec.kwargs)  # architectures without registered cfgs
    return dict(model.pretrained_cfg)


def model_problems(entry: dict, top1_measured: bool = False) -> list[str]:
    """What is wrong with a config model entry (empty when it is valid). Checks names against timm's registry
    (torchvision's for torchvision entries). `top1_measured`: the config has `imagenet_val`, so ImageNet top-1 is
    measured and need not be given."""
    source = infer_weights_source(entry)
    if top1_measured:
        entry = {"imagenet_top1": None, **entry}
    if ("timm" in entry) == ("torchvision" in entry):
        return ["give exactly one of 'timm' (a timm name[.tag]) or 'torchvision' (a torchvision name[.WEIGHTS])"]
    if "torchvision" in entry:
        problems = torchvision_problems(entry, source)
        if source == "upstream":
            problems.append("'pretrained: upstream' is for the demo's timm-registered models")
        elif not problems and "imagenet_top1" not in entry:
            problems.append(f"{source} models need 'imagenet_top1' (percent; torchvision lists it per weights)")
        if source == "checkpoint" and "checkpoint" not in entry:
            problems.append("'pretrained: checkpoint' needs a 'checkpoint' file")
        return problems
    arch = entry["timm"].split(".")[0]
    available = timm.list_models()
    if arch not in available:
        return [f"unknown timm architecture {arch!r}{did_you_mean(arch, available)}"]
    if source == "hub":
        if "." not in entry["timm"]:
            tags = timm.list_pretrained(f"{arch}.*")
            return [f"'{entry['timm']}' has no pretrained tag; give it explicitly (timm's default tag changes between "
                    f"releases); available: {', '.join(tags) or 'none: use a checkpoint'}"]
        if entry["timm"] not in timm.list_pretrained(entry["timm"]):
            tags = timm.list_pretrained(f"{arch}.*")
            return [f"unknown pretrained tag '{entry['timm']}'; available: {', '.join(tags) or 'none'}"]
        if "imagenet_top1" not in entry:
            return ["hub models need 'imagenet_top1' (percent), e.g. from timm's results table, or set imagenet_val "
                    "to measure it"]
    if source == "checkpoint":
        if "checkpoint" not in entry:
            return ["'pretrained: checkpoint' needs a 'checkpoint' file"]
        if "imagenet_top1" not in entry:
            return ["checkpoint models need 'imagenet_top1' (percent), or set imagenet_val to measure it"]
    return []


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """'name.' of the model's classifier module(s), found from the model itself (timm's `get_classifier`), so that an
    architecture registered without a pretrained config (whose 'classifier' entry is None) loads the same way.
    Falls back to the pretrained config's names for a model without `get_classifier`."""
    heads = model.get_classifier() if hasattr(model, "get_classifier") else None
    heads = [h for h in (heads if isinstance(heads, tuple) else (heads,)) if isinstance(h, nn.Module)]
    names = [name for name, module in model.named_modules() if name and any(module is h for h in heads)]
    if not names:
        configured = getattr(model, "pretrained_cfg", {}).get("classifier") or "head"
        names = [configured] if isinstance(configured, str) else list(configured)
    return tuple(f"{n}." for n in names)


def read_checkpoint(checkpoint) -> dict:
    """A checkpoint file's state dict, through timm's own loader (handles 'state_dict' / 'model' wrappers and
    'module.' prefixes); a missing or unreadable file is a clear error."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint file {checkpoint} does not exist (config key models.<name>.checkpoint)")
    try:
        return timm.models.load_state_dict(str(checkpoint))
    except Exception as error:  # torch.load raises several types for files that are not checkpoints
        raise ValueError(f"checkpoint {checkpoint} could not be read as a PyTorch or safetensors state dict: "
                         f"{type(error).__name__}: {error}") from error


def load_backbone_weights(model: nn.Module, checkpoint) -> None:
    """Load a checkpoint file into `model`, all weights but the classifier (whose classes differ downstream).
    Every backbone weight must be present: a checkpoint of another architecture fails loudly instead of leaving
    random weights."""
    state = read_checkpoint(checkpoint)
    prefixes = classifier_prefixes(model)
    state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(prefixes)]
    if missing or result.unexpected_keys:
        raise ValueError(f"checkpoint {checkpoint} does not fit architecture {model.__class__.__name__}: "
                         f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")


def build_model(spec: ModelSpec, num_classes: int, weights: bool = True, **overrides) -> nn.Module:
    """The spec's model with a fresh `num_classes`-way head (0: no head, the forward returns pooled pre-logits).

    weights=False gives the same architecture randomly initialized (the `scratch` mode). `overrides` are extra
    model keyword arguments (for example `norm` for the scratch variants).
    """
    kwargs = {**spec.kwargs, **overrides}
    if spec.torchvision:
        load = None
        if weights and spec.pretrained != "hub":
            if spec.checkpoint is None:
                raise ValueError(f"model '{spec.name}' has no weights: give a checkpoint or a weights tag")
            load = lambda model: load_backbone_weights(model, spec.checkpoint)  # noqa: E731
        try:
            hub_weights = weights and spec.pretrained == "hub"
            return build_torchvision(spec.torchvision, num_classes, hub_weights, load, **kwargs)
        except (OSError, RuntimeError) as error:
            if weights and spec.pretrained == "hub" and not isinstance(error, FileNotFoundError):
                raise RuntimeError(f"could not load torchvision weights '{spec.torchvision}' for model '{spec.name}': "
                                   f"{error}. On an offline node: {PREFETCH_HINT}") from error
            raise
    if weights and spec.pretrained == "hub":
        try:
            return timm.create_model(spec.timm, pretrained=True, num_classes=num_classes, **kwargs)
        except Exception as error:  # noqa: BLE001 - re-raised with what to do
            hub = huggingface_hub.constants
            raise RuntimeError(f"could not load hub weights '{spec.timm}' for model '{spec.name}' (Hugging Face cache "
                               f"{hub.HF_HUB_CACHE}, offline: {hub.HF_HUB_OFFLINE}): {error}. "
                               f"On an offline node: {PREFETCH_HINT}") from error
    model = timm.create_model(spec.arch, pretrained=False, **kwargs)
    if weights:
        if spec.checkpoint is None:
            raise ValueError(f"model '{spec.name}' has no weights: give a checkpoint or a hub tag")
        load_backbone_weights(model, spec.checkpoint)
    model.reset_classifier(num_classes)
    return model


def feature_width(spec: ModelSpec) -> int:
    """The spec's penultimate width (features per image), from its architecture built on the meta device: no memory,
    no weights, no download."""
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. torchvision's notice about GoogLeNet's default initialization
        return int(build_model(spec, 0, weights=False).num_features)


def build_imagenet_classifier(spec: ModelSpec) -> nn.Module:
    """The spec's model with its own ImageNet classifier kept (for measuring ImageNet top-1): hub weights as
    published, or a checkpoint loaded whole (its head's width read from the checkpoint)."""
    if spec.torchvision:
        return build_torchvision(spec.torchvision, num_classes=None, hub_weights=spec.pretrained == "hub",
                                 load_checkpoint=None if spec.pretrained == "hub"
                                 else lambda model: model.load_state_dict(read_checkpoint(spec.checkpoint)),
                                 **spec.kwargs)
    if spec.pretrained == "hub":
        return build_model(spec, num_classes=timm.models.get_pretrained_cfg(spec.timm).num_classes)
    state = read_checkpoint(spec.checkpoint)
    model = timm.create_model(spec.arch, pretrained=False, **spec.kwargs)
    prefixes = classifier_prefixes(model)
    head = next((state[f"{p}weight"] for p in prefixes if f"{p}weight" in state), None)
    if head is None:
        raise ValueError(f"checkpoint {spec.checkpoint} has no classifier ({', '.join(prefixes)}weight): ImageNet "
                         "top-1 needs the checkpoint's own head")
    if head.shape[0] != model.num_classes:  # e.g. 1,001 outputs: a background class first (TF-slim checkpoints)
        model.reset_classifier(head.shape[0])
    model.load_state_dict(state)
    return model
