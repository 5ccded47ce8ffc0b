"""torchvision models through the same interface as timm's (config: `torchvision: name.WEIGHTS` or `name` with a
checkpoint). torchvision's classifier is its last nn.Linear (ResNet `fc`, VGG `classifier.6`, DenseNet
`classifier`, EfficientNet / MobileNet `classifier.1`, ViT `heads.head`): it is replaced by the downstream head, or
by nn.Identity for features, so the penultimate features are that layer's input. The model gets timm's
`num_features` and a `pretrained_cfg` (preprocessing from the weights' own transforms), and keeps torchvision's
parameter names, so torchvision-format checkpoints load as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from transferbench.hints import PREFETCH_HINT, did_you_mean, hub_offline

# torchvision's ImageClassification defaults (resize 256, crop 224, bilinear, ImageNet mean/std) for models
# built without hub weights.
DEFAULT_CFG = {"input_size": (3, 224, 224), "crop_pct": 224 / 256, "interpolation": "bilinear",
               "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _split(name_tag: str) -> tuple[str, str | None]:
    name, _, tag = name_tag.partition(".")
    return name, tag or None


def _weights(name_tag: str):
    import torchvision

    name, tag = _split(name_tag)
    return torchvision.models.get_model_weights(name)[tag] if tag else None


def weights_file(name_tag: str) -> Path:
    """Where torchvision keeps the tag's weights once downloaded (torch.hub's checkpoint cache, $TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_weights(name_tag).url)


def fetch_weights(name_tag: str) -> Path:
    """Download the tag's weights into torchvision's cache (checking their hash); returns the file."""
    _weights(name_tag).get_state_dict(progress=False, check_hash=True)
    return weights_file(name_tag)


def torchvision_cfg(name_tag: str) -> dict:
    """Preprocessing of the weights (their transforms), or torchvision's defaults without weights."""
    weights = _weights(name_tag)
    if weights is None:
        return dict(DEFAULT_CFG)
    transforms = weights.transforms()
    crop, resize = transforms.crop_size[0], transforms.resize_size[0]
    return {"input_size": (3, crop, crop), "crop_pct": crop / resize,
            "interpolation": transforms.interpolation.value, "mean": tuple(transforms.mean),
            "std": tuple(transforms.std)}


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    name, layer = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return name, layer


def build_torchvision(name_tag: str, num_classes: int | None, hub_weights: bool, load_checkpoint=None,
                      **kwargs) -> nn.Module:
    """The torchvision model with a `num_classes` head (0: identity, forward gives penultimate features; None: its
    own ImageNet head kept).

    hub_weights: load the tag's weights (torchvision's download cache; offline nodes need them prefetched).
    load_checkpoint(model): loads local weights into the model before its head is replaced.
    """
    import torchvision

    name, _ = _split(name_tag)
    if hub_weights and hub_offline() and not weights_file(name_tag).is_file():
        raise FileNotFoundError(f"torchvision weights '{name_tag}' are not in torchvision's cache "
                                f"({weights_file(name_tag)}) and this job runs offline (HF_HUB_OFFLINE=1): "
                                f"{PREFETCH_HINT}")
    model = torchvision.models.get_model(name, weights=_weights(name_tag) if hub_weights else None, **kwargs)
    head_name, head = last_linear(model)
    model.pretrained_cfg = {**torchvision_cfg(name_tag), "classifier": head_name, "architecture": name}
    if load_checkpoint is not None:
        load_checkpoint(model)
    if num_classes is not None:
        model.set_submodule(head_name, nn.Linear(head.in_features, num_classes) if num_classes else nn.Identity())
    model.num_features = head.in_features
    return model


def torchvision_problems(entry: dict, source: str) -> list[str]:
    """What is wrong with a torchvision model entry (empty when valid)."""
    import torchvision

    name, tag = _split(entry["torchvision"])
    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        return [f"unknown torchvision classification model {name!r}{did_you_mean(name, available)}"]
    tags = list(torchvision.models.get_model_weights(name).__members__)
    if source == "hub" and tag is None:
        return [f"'{name}' has no weights tag; give it explicitly as '{name}.<WEIGHTS>'; available: {', '.join(tags)}"]
    if tag is not None and tag not in tags:
        return [f"unknown weights '{tag}' for torchvision model '{name}'; available: {', '.join(tags)}"]
    return []
