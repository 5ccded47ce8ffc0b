"""A backbone's stages: the blocks between its resolution changes, in forward order, which partial fine-tuning
trains from the top (the last k) and which a detector reads its feature pyramid from.

Where the stages come from:
- timm models (the demo CNN included): `feature_info`, timm's own description of its stage outputs (module name,
  channels, stride), the one `features_only` builds on;
- torchvision ResNets (ResNet, ResNeXt, Wide ResNet): the stem, then layer1..layer4; GoogLeNet (Inception v1): conv1,
  conv3, inception3b, inception4e, inception5b (its outputs at strides 2 to 32);
- other torchvision CNNs with a `features` or `layers` Sequential (VGG, MobileNet, EfficientNet, DenseNet, ConvNeXt,
  MNASNet ...): its children, cut where the next child changes the resolution (found by one forward pass on a dummy
  image).

A parameter belongs to the stage whose module is the first, in registration order, at or after the module holding it:
the stem's convolution precedes the first stage output and joins it; modules after the last stage but before the
classifier (EfficientNet's conv_head, a final norm) join the last. The classifier belongs to no stage: it is the
task's head, always trained.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
from torch import nn

from transferbench.models.spec import classifier_prefixes


@dataclass(frozen=True)
class Stage:
    module: str  # the module whose output is the stage's output
    channels: int
    reduction: int  # input side / output side


def _torchvision_markers(model: nn.Module, resolution: int) -> list[str]:
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):
        return ["maxpool", "layer1", "layer2", "layer3", "layer4"]  # the stem ends at its max pool
    if all(hasattr(model, n) for n in ("inception3b", "inception4e", "inception5b")):  # torchvision's GoogLeNet
        return ["conv1", "conv3", "inception3b", "inception4e", "inception5b"]
    trunk = "features" if isinstance(getattr(model, "features", None), nn.Sequential) else "layers"
    features = getattr(model, trunk, None)
    if isinstance(features, nn.Sequential):
        sides, x = [], torch.zeros(1, 3, resolution, resolution)
        with torch.no_grad():
            for child in features:
                x = child(x)
                sides.append(x.shape[-1])
        names = [name for name, _ in features.named_children()]
        return [f"{trunk}.{names[i]}" for i in range(len(names)) if i == len(names) - 1 or sides[i + 1] < sides[i]]
    return []


def stage_modules(model: nn.Module, resolution: int = 224) -> list[str]:
    """Names of the modules whose outputs are the backbone's stage outputs, from input to output (module docstring);
    a clear error for a model whose stages are not known."""
    info = getattr(model, "feature_info", None)
    if info:
        entries = info.get_dicts() if hasattr(info, "get_dicts") else info
        return [entry["module"] for entry in entries]
    was_training = model.training
    model.eval()
    markers = _torchvision_markers(model, resolution)
    model.train(was_training)
    if not markers:
        raise ValueError(f"the stages of {model.__class__.__name__} are not known: partial fine-tuning and detection "
                         "need a timm model (its feature_info), a torchvision ResNet or GoogLeNet, or a torchvision "
                         "CNN whose layers are a `features` or `layers` Sequential")
    return markers


def describe_stages(model: nn.Module, resolution: int) -> list[Stage]:
    """The stages with their output channels and reduction, from one forward pass at `resolution`."""
    names = stage_modules(model, resolution)
    outputs = stage_outputs(model, names, torch.zeros(1, 3, resolution, resolution))
    return [Stage(n, int(o.shape[1]), round(resolution / o.shape[-1])) for n, o in zip(names, outputs)]


def stage_outputs(model: nn.Module, names: list[str], images: torch.Tensor) -> list[torch.Tensor]:
    """The named modules' outputs for `images` (forward hooks; `forward_features` where the model has one, so the
    classifier does not run)."""
    captured = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out))
             for n in names]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            (model.forward_features if hasattr(model, "forward_features") else model)(images)
        model.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    return [captured[n] for n in names]


def _module_stages(model: nn.Module, names: list[str]) -> dict[str, int]:
    """{module name: stage index} of every module (the model itself included), by registration order (module
    docstring); the classifier's modules get the last stage here: parameter_stages takes them out."""
    order = [name for name, _ in model.named_modules()]
    ends = [max(i for i, n in enumerate(order) if n == name or n.startswith(f"{name}."))  # a stage's last submodule
            for name in names]
    return {n: next((s for s, end in enumerate(ends) if i <= end), len(ends) - 1) for i, n in enumerate(order)}


def parameter_stages(model: nn.Module, resolution: int = 224) -> dict[str, int | None]:
    """{parameter name: stage index} (None: the classifier's), by registration order (module docstring)."""
    modules = _module_stages(model, stage_modules(model, resolution))
    heads = classifier_prefixes(model)
    return {p: None if p.startswith(heads) else modules[p.rpartition(".")[0]] for p, _ in model.named_parameters()}


def freeze_all_but_last(model: nn.Module, trainable_stages: int, resolution: int = 224) -> dict:
    """Freeze every stage but the last `trainable_stages` (0: only the classifier trains), their BatchNorms included:
    frozen parameters get no gradient, frozen BatchNorms become timm's FrozenBatchNorm2d, which keep the pretrained
    statistics in training mode too, and frozen modules stay in eval mode (dropout, drop-path off). Returns {stages,
    trainable_stages, trainable_params, total_params}."""
    from timm.utils.model import freeze

    names = stage_modules(model, resolution)
    if not 0 <= trainable_stages <= len(names):
        raise ValueError(f"trainable_stages {trainable_stages}: {model.__class__.__name__} has {len(names)} stages "
                         f"({', '.join(names)}); expected 0 to {len(names)}")
    stages = parameter_stages(model, resolution)
    cut = len(names) - trainable_stages
    frozen_params = {p for p, s in stages.items() if s is not None and s < cut}
    # the modules holding a frozen parameter, plus parameter-free BatchNorms (affine=False) before the cut
    modules, heads = _module_stages(model, names), classifier_prefixes(model)
    owners = {p.rpartition(".")[0] for p in frozen_params} | {
        n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and next(m.parameters(), None) is None and modules[n] < cut and not f"{n}.".startswith(heads)}
    # a module all of whose parameters (its children's included) freeze is frozen whole (its BatchNorms converted);
    # one that also holds trainable ones (the model itself, holding a ViT's cls_token) freezes its own parameters only
    frozen_modules = []
    for name in sorted(owners):
        module, prefix = model.get_submodule(name), f"{name}." if name else ""
        if all(prefix + p in frozen_params for p, _ in module.named_parameters()):
            frozen_modules.append(name)
        else:
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
    if frozen_modules:
        freeze(model, frozen_modules)
    for name in _outermost_frozen(model, frozen_modules, frozen_params):  # (after freeze: it replaces BatchNorms)
        _stay_in_eval(model.get_submodule(name))
    return {"stages": len(names), "trainable_stages": trainable_stages,
            "trainable_params": trainable_parameters(model),
            "total_params": sum(p.numel() for p in model.parameters())}


def _outermost_frozen(model: nn.Module, names, frozen_params: set) -> set[str]:
    """For each named module, its outermost ancestor (below the model itself) all of whose parameters are frozen: a
    whole frozen stage, with its parameter-free parts (dropout, drop-path) included."""
    def whole(name):
        params = [f"{name}.{p}" for p, _ in model.get_submodule(name).named_parameters()]
        return bool(params) and all(p in frozen_params for p in params)

    tops = set()
    for name in names:
        parts, top = name.split("."), name
        for k in range(len(parts) - 1, 0, -1):
            if not whole(".".join(parts[:k])):
                break
            top = ".".join(parts[:k])
        tops.add(top)
    return tops


def _stay_in_eval(module: nn.Module) -> None:
    """A frozen module computes as at inference whatever mode its model is put in: model.train() leaves it (and its
    children) in eval mode, so dropout and stochastic depth inside frozen stages stay off, like their weights."""
    module.eval()
    module.train = types.MethodType(lambda self, mode=True: self, module)


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
