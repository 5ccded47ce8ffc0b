"""The demo study's model family: small CNNs registered with timm, so they are built, configured and described
(pretrained_cfg) exactly like any timm model. Width and depth are keyword arguments from the config.

The four ImageNet regularizers of the paper's ablation (Kornblith et al. 2019, Fig. 3 and 5) are keyword arguments
too: `bn_scale=False` fixes every BatchNorm scale (gamma) at 1 (Inception's default: no scale parameter),
`dropout` is the drop probability before the classifier, and `aux_head=True` adds an auxiliary classifier on the
output of the first stage, whose logits the forward pass returns in training mode as a second output (the training
loop weighs its loss by the settings' `aux_weight`; label smoothing is a training setting, not the model's). The aux
head serves pretraining only: downstream settings give it no weight (Inception's aux head is dropped for transfer),
and checkpoints load without it (it is part of the classifier, like the head)."""

from __future__ import annotations

import torch
from timm.layers import StdConv2d
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn


def _norm(norm: str, channels: int, bn_scale: bool = True) -> nn.Module:
    if norm == "batchnorm":
        layer = nn.BatchNorm2d(channels)
        layer.weight.requires_grad_(bn_scale)  # without a scale parameter gamma stays at its initial 1
        return layer
    if norm in ("groupnorm", "groupnorm_ws"):
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {norm!r}: expected batchnorm, groupnorm or groupnorm_ws")


def _conv(norm: str, cin: int, cout: int, stride: int = 1, bn_scale: bool = True) -> nn.Module:
    # GN + weight standardization (BiT, Rethinking ImageNet Pre-training) uses timm's standardized convolution.
    conv_cls = StdConv2d if norm == "groupnorm_ws" else nn.Conv2d
    return nn.Sequential(conv_cls(cin, cout, 3, stride=stride, padding=1, bias=False), _norm(norm, cout, bn_scale),
                         nn.ReLU(inplace=True))


class DemoCNN(nn.Module):
    """Stem conv, then `depth` stages that each halve the resolution and double the width, then global pooling.

    Follows timm's classifier interface: `num_features`, `forward_features`, `forward_head(pre_logits=...)`,
    `get_classifier`, `reset_classifier`, so feature extraction and fine-tuning treat it like any timm model.
    """

    def __init__(self, width: int = 16, depth: int = 2, num_classes: int = 1000, in_chans: int = 3,
                 norm: str = "batchnorm", bn_scale: bool = True, dropout: float = 0.0, aux_head: bool = False, **_):
        super().__init__()
        layers, channels = [_conv(norm, in_chans, width, bn_scale=bn_scale)], width
        for _stage in range(depth):
            layers += [_conv(norm, channels, channels * 2, stride=2, bn_scale=bn_scale),
                       _conv(norm, channels * 2, channels * 2, bn_scale=bn_scale)]
            channels *= 2
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        # timm's description of the stage outputs (what partial fine-tuning and detection backbones read): the
        # stem's, then each stage's last conv block
        self.feature_info = [{"module": "features.0", "num_chs": width, "reduction": 1}] + [
            {"module": f"features.{2 * s + 2}", "num_chs": width * 2 ** (s + 1), "reduction": 2 ** (s + 1)}
            for s in range(depth)]
        self.num_classes = num_classes
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes) if num_classes else nn.Identity()
        # on the first stage's output (its last layer's): width * 2 channels, or the stem's with depth 0
        self.aux_at = min(3, len(layers)) if aux_head else None
        aux_channels = width * 2 if depth else width
        self.aux = nn.Linear(aux_channels, num_classes) if aux_head and num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(self.drop(x))

    def forward(self, x: torch.Tensor):
        """Logits; in training mode with an aux head, (logits, aux logits)."""
        if self.aux is None or not self.training:
            return self.forward_head(self.forward_features(x))
        early = self.features[:self.aux_at](x)
        logits = self.forward_head(self.features[self.aux_at:](early))
        return logits, self.aux(early.mean(dim=(2, 3)))

    def get_classifier(self):
        """The head, or (head, aux head): both are task-specific, neither loads from an upstream checkpoint."""
        return self.head if self.aux is None else (self.head, self.aux)

    def reset_classifier(self, num_classes: int, global_pool=None) -> None:
        """Fresh heads for `num_classes` (0: none), the aux head's too (its loss counts only where the training
        settings give it an aux_weight: the upstream pretraining)."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        if self.aux is not None:
            self.aux = nn.Linear(self.aux.in_features, num_classes) if num_classes else None


# Registered with timm's pretrained-config registry, like any timm architecture: ModelSpec reads the demo's
# preprocessing from timm.models.get_pretrained_cfg without building a model. No hub weights (the demo pretrains it).
default_cfgs = generate_default_cfgs({"tb_democnn": {
    "input_size": (3, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25), "classifier": "head", "num_classes": 1000}})


@register_model
def tb_democnn(pretrained: bool = False, **kwargs) -> DemoCNN:
    """transferbench's demo CNN; kwargs: width, depth, norm, bn_scale, dropout, aux_head. No hub weights: the demo
    pretrains it itself."""
    if pretrained:
        raise ValueError("tb_democnn has no hub weights: the demo study pretrains it (pretrained: upstream)")
    return build_model_with_cfg(DemoCNN, "tb_democnn", pretrained=False, **kwargs)
