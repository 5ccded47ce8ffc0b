"""The demo study's model family: small CNNs registered with timm, so they are built, configured and described
(pretrained_cfg) exactly like any timm model. Width and depth are keyword arguments from the config."""

from __future__ import annotations

import torch
from timm.layers import StdConv2d
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if norm in ("groupnorm", "groupnorm_ws"):
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {norm!r}: expected batchnorm, groupnorm or groupnorm_ws")


def _conv(norm: str, cin: int, cout: int, stride: int = 1) -> nn.Module:
    # GN + weight standardization (BiT, Rethinking ImageNet Pre-training) uses timm's standardized convolution.
    conv_cls = StdConv2d if norm == "groupnorm_ws" else nn.Conv2d
    return nn.Sequential(conv_cls(cin, cout, 3, stride=stride, padding=1, bias=False), _norm(norm, cout),
                         nn.ReLU(inplace=True))


class DemoCNN(nn.Module):
    """Stem conv, then `depth` stages that each halve the resolution and double the width, then global pooling.

    Follows timm's classifier interface: `num_features`, `forward_features`, `forward_head(pre_logits=...)`,
    `get_classifier`, `reset_classifier`, so feature extraction and fine-tuning treat it like any timm model.
    """

    def __init__(self, width: int = 16, depth: int = 2, num_classes: int = 1000, in_chans: int = 3,
                 norm: str = "batchnorm", **_):
        super().__init__()
        layers, channels = [_conv(norm, in_chans, width)], width
        for _stage in range(depth):
            layers += [_conv(norm, channels, channels * 2, stride=2), _conv(norm, channels * 2, channels * 2)]
            channels *= 2
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.num_classes = num_classes
        self.head = nn.Linear(channels, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool=None) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


# Registered with timm's pretrained-config registry, like any timm architecture: ModelSpec reads the demo's
# preprocessing from timm.models.get_pretrained_cfg without building a model. No hub weights (the demo pretrains it).
default_cfgs = generate_default_cfgs({"tb_democnn": {
    "input_size": (3, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25), "classifier": "head", "num_classes": 1000}})


@register_model
def tb_democnn(pretrained: bool = False, **kwargs) -> DemoCNN:
    """transferbench's demo CNN; kwargs: width, depth, norm. No hub weights: the demo pretrains it itself."""
    if pretrained:
        raise ValueError("tb_democnn has no hub weights: the demo study pretrains it (pretrained: upstream)")
    return build_model_with_cfg(DemoCNN, "tb_democnn", pretrained=False, **kwargs)
