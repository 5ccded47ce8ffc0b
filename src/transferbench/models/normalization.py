"""Another normalization layer for any timm or torchvision CNN: the BatchNorm -> GroupNorm (+ weight standardization)
variants of "Rethinking ImageNet Pre-training" (He et al. 2019) and BiT (Kolesnikov et al. 2020), made from the
model as built, so no architecture needs its own `norm` argument.

`convert_norm(model, norm)` swaps layers in place, at the same positions of the module tree, and returns a
`NormConversion` recording what it did (the groups of every new GroupNorm, the convolutions it standardized).
A model it cannot convert faithfully raises ValueError naming the modules, before anything is changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from timm.layers import (
    BatchNormAct2d,
    Conv2dSame,
    FrozenBatchNormAct2d,
    GroupNormAct,
    ScaledStdConv2d,
    ScaledStdConv2dSame,
    StdConv2d,
    StdConv2dSame,
)
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from transferbench.hints import did_you_mean

NORMS = ("batchnorm", "groupnorm", "groupnorm_ws")

# Wu & He's default number of groups (Group Normalization, 2018), also Rethinking's and BiT's.
DEFAULT_GROUPS = 32

# One channel per group is InstanceNorm, the worst setting in Wu & He's Table 3 (28.4% top-1 error against 24.1%
# for 32 groups); two channels per group is the fewest that 32 groups over ResNet's 64-channel stem already uses.
MIN_GROUP_CHANNELS = 2

# timm's StdConv2d default. BiT's released weights use 1e-8 (timm builds them with StdConv2d(eps=1e-8), the
# reference code 1e-10) to match their TF numerics; the variants here are trained from scratch, where eps only
# bounds the gain of a filter whose weights have collapsed to a near-constant (Kaiming init gives per-filter
# variances of 2 / fan_in, about 1e-3 and above, so eps is negligible otherwise).
DEFAULT_WS_EPS = 1e-6

# Layers with the batch statistics GroupNorm replaces, over 2-d feature maps. The frozen ones (detection backbones)
# hold their affine as buffers; their GroupNorm gets trainable parameters initialized from them.
_ACT_BATCHNORMS = (BatchNormAct2d, FrozenBatchNormAct2d)  # norm + drop + act in one module (timm)
_FROZEN_BATCHNORMS = (FrozenBatchNorm2d, FrozenBatchNormAct2d)

# Convolutions that already standardize their weights (BiT, NFNets): kept as they are.
_STANDARDIZED_CONVS = (StdConv2d, StdConv2dSame, ScaledStdConv2d, ScaledStdConv2dSame)


@dataclass(frozen=True)
class NormConversion:
    """What `convert_norm` did. `groups`: name of each new GroupNorm (the BatchNorm's position) -> its number of
    groups; `standardized`: names of the convolutions made weight-standardized, with eps `ws_eps`."""

    norm: str
    groups: dict[str, int]
    standardized: tuple[str, ...] = ()
    ws_eps: float | None = None

    def describe(self) -> str:
        """One log line, e.g. 'groupnorm_ws: 20 BatchNorm -> GroupNorm (32 groups x17, 16 groups x3), 20 convolutions
        weight-standardized (StdConv2d, eps 1e-06)'."""
        if self.norm == "batchnorm":
            return "batchnorm: the model's own normalization layers, unchanged"
        counts = sorted(Counter(self.groups.values()).items(), reverse=True)
        text = (f"{self.norm}: {len(self.groups)} BatchNorm -> GroupNorm ("
                + ", ".join(f"{g} groups x{n}" for g, n in counts) + ")")
        if self.norm == "groupnorm_ws":
            text += f", {len(self.standardized)} convolutions weight-standardized (StdConv2d, eps {self.ws_eps:g})"
        return text


def group_count(channels: int, groups: int = DEFAULT_GROUPS, min_group_channels: int = MIN_GROUP_CHANNELS) -> int:
    """Number of GroupNorm groups over `channels`: the largest divisor of `channels` that is at most `groups` and
    leaves at least `min_group_channels` channels in each group; 1 (LayerNorm over channels) if none does.

    With the defaults: 32 for every multiple of 32 from 64 up (Wu & He's setting, so ResNets and DenseNets get exactly
    it), and for other widths the most groups up to 32 that avoid one channel per group (InstanceNorm):
    16 -> 8, 24 -> 12, 32 -> 16, 96 -> 32, 144 -> 24, 320 -> 32, a prime -> 1.
    """
    if channels < 1 or groups < 1 or min_group_channels < 1:
        raise ValueError(f"group_count needs positive channels, groups and min_group_channels "
                         f"(got {channels}, {groups}, {min_group_channels})")
    limit = min(groups, channels // min_group_channels)
    return max((g for g in range(1, limit + 1) if channels % g == 0), default=1)


def convert_norm(model: nn.Module, norm: str, *, groups: int = DEFAULT_GROUPS,
                 min_group_channels: int = MIN_GROUP_CHANNELS, ws_eps: float = DEFAULT_WS_EPS) -> NormConversion:
    """Give `model` (modified in place) the normalization `norm`, one of NORMS:

    - 'batchnorm': the model's own layers, unchanged (whatever they are).
    - 'groupnorm': every BatchNorm over 2-d feature maps (nn.BatchNorm2d, timm's BatchNormAct2d and
      FrozenBatchNormAct2d, torchvision's FrozenBatchNorm2d) becomes a GroupNorm over the same channels, with the
      BatchNorm's eps and `group_count(channels, groups, min_group_channels)` groups. The affine weight and bias move
      over as they are (the same Parameters: an architecture's init choices, like a zero-initialized last gamma per
      residual block, survive), so the parameters keep their names, shapes and count; only the running statistics
      (buffers) go. timm's norm+act layers become GroupNormAct with the same `act` and `drop` modules. Frozen
      BatchNorms hold their affine as buffers; their GroupNorm's affine is trainable (GN's recipe trains it), so
      these add 2 x channels parameters each. Convolutions are left as they are (BiT's StdConv2d included).
    - 'groupnorm_ws': as 'groupnorm', and every nn.Conv2d becomes timm's StdConv2d (timm's Conv2dSame: StdConv2dSame)
      with the same channels, kernel, stride, padding, dilation, groups and bias, and the same weight and bias
      Parameters; eps `ws_eps` (default 1e-6, timm's; BiT's weights use 1e-8). All of them, not only those feeding a
      norm: it is BiT's rule (stem and projection shortcuts included) and needs no analysis of the graph. A
      depthwise filter is then zero-mean over its own kernel window. Convolutions that already standardize
      (StdConv2d, ScaledStdConv2d) are kept.

    New layers are put on the old ones' device and dtype and in their train/eval mode. The result is meant to be
    trained (the scratch mode): converting a pretrained model changes its function (GroupNorm normalizes by each
    sample's statistics, not the running ones).

    Raises ValueError, naming the modules and before changing anything, for: another BatchNorm (BatchNorm1d in a
    head, BatchNorm3d, SyncBatchNorm, a BatchNorm2d subclass with its own forward such as timm's SplitBatchNorm2d),
    which GroupNorm would not replace faithfully; a model with no BatchNorm to convert (a ViT's LayerNorm, VGG without
    BN, BiT which is already GroupNorm + StdConv2d: its own layers are what 'batchnorm' trains); and, for
    'groupnorm_ws', a Conv2d subclass with its own forward, a padding_mode other than 'zeros' (StdConv2d pads with
    zeros only), or a single weight per filter (standardized to zero).
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}: expected one of {', '.join(NORMS)}{did_you_mean(norm, NORMS)}")
    if norm == "batchnorm":
        return NormConversion(norm, {})
    model_name = _model_name(model)
    batchnorms = _positions(model, _is_convertible_batchnorm)
    problems = [f"'{name}': {type(module).__name__} cannot become GroupNorm{_batchnorm_hint(module)}"
                for name, module in model.named_modules() if _is_other_batchnorm(module)]
    convs = {}
    if norm == "groupnorm_ws":
        convs = _positions(model, lambda m: isinstance(m, nn.Conv2d) and not isinstance(m, _STANDARDIZED_CONVS))
        problems += [f"'{names[0]}': {problem}" for names, conv in convs.values()
                     if (problem := _standardization_problem(conv))]
    if problems:
        raise ValueError(f"cannot convert {model_name} to {norm}: " + "; ".join(problems)
                         + ". convert_norm replaces BatchNorm over 2-d feature maps (BatchNorm2d, BatchNormAct2d, "
                           "FrozenBatchNorm2d) and plain convolutions; use norm: batchnorm for this model")
    if not batchnorms:
        raise ValueError(f"{model_name} has no BatchNorm layer to convert to {norm} "
                         f"({_describe_norms(model)}); norm: batchnorm trains the model's own layers")

    chosen = {}
    for names, batchnorm in batchnorms.values():
        group_norm = _group_norm(batchnorm, group_count(_channels(batchnorm), groups, min_group_channels))
        for name in names:
            model.set_submodule(name, group_norm)
        chosen[names[0]] = group_norm.num_groups
    for names, conv in convs.values():
        standardized = _standardized_conv(conv, ws_eps)
        for name in names:
            model.set_submodule(name, standardized)
    return NormConversion(norm, chosen, tuple(names[0] for names, _ in convs.values()),
                          ws_eps if norm == "groupnorm_ws" else None)


def _model_name(model: nn.Module) -> str:
    architecture = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    return f"model '{architecture}'" if architecture else f"model {type(model).__name__}"


def _positions(model: nn.Module, wanted) -> dict[int, tuple[list[str], nn.Module]]:
    """Modules for which wanted(module), each with every name it has in the tree (a module shared between two
    positions gets one replacement, shared the same way)."""
    found = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if wanted(module):
            if name == "":
                raise ValueError(f"convert_norm converts the layers of a model, not a single "
                                 f"{type(module).__name__}")
            found.setdefault(id(module), ([], module))[0].append(name)
    return found


def _is_convertible_batchnorm(module: nn.Module) -> bool:
    if isinstance(module, (*_ACT_BATCHNORMS, FrozenBatchNorm2d)):
        return True
    # A subclass with its own forward (timm's SplitBatchNorm2d) does more than GroupNorm would: not convertible.
    return isinstance(module, nn.BatchNorm2d) and type(module).forward is nn.BatchNorm2d.forward


def _is_other_batchnorm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm) and not _is_convertible_batchnorm(module)


def _batchnorm_hint(module: nn.Module) -> str:
    if isinstance(module, nn.SyncBatchNorm):
        return " (convert the norm before nn.SyncBatchNorm.convert_sync_batchnorm)"
    if isinstance(module, nn.BatchNorm2d):
        return " (a BatchNorm2d subclass with its own forward, which GroupNorm would drop)"
    if isinstance(module, nn.BatchNorm1d):
        return " (it normalizes vectors, which have no channel groups with spatial extent)"
    return ""


def _describe_norms(model: nn.Module) -> str:
    found = Counter(type(m).__name__ for m in model.modules() if _is_norm_layer(m))
    if not found:
        return "it has no normalization layer at all"
    text = "its normalization layers: " + ", ".join(f"{n} x{c}" for n, c in found.most_common())
    if any(isinstance(m, nn.GroupNorm) for m in model.modules()):
        text += "; it already normalizes without batch statistics, as BiT does"
    return text


def _is_norm_layer(module: nn.Module) -> bool:
    # Containers named for norms (torchvision's Conv2dNormActivation, timm's ConvNormAct) hold no tensors themselves.
    holds_tensors = bool([*module.parameters(recurse=False), *module.buffers(recurse=False)])
    torch_norms = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm, nn.LocalResponseNorm)
    return isinstance(module, torch_norms) or ("Norm" in type(module).__name__ and holds_tensors)


def _channels(batchnorm: nn.Module) -> int:
    return batchnorm.weight.shape[0] if batchnorm.weight is not None else batchnorm.num_features


def _group_norm(batchnorm: nn.Module, num_groups: int) -> nn.GroupNorm:
    frozen = isinstance(batchnorm, _FROZEN_BATCHNORMS)
    affine = frozen or batchnorm.affine
    like = next(batchnorm.buffers(recurse=False), None)
    like = next(batchnorm.parameters(recurse=False), like)
    factory = {"device": like.device, "dtype": like.dtype} if like is not None else {}
    channels = _channels(batchnorm)
    if isinstance(batchnorm, _ACT_BATCHNORMS):
        group_norm = GroupNormAct(channels, num_groups, eps=batchnorm.eps, affine=affine, apply_act=False, **factory)
        group_norm.act, group_norm.drop = batchnorm.act, batchnorm.drop
    else:
        group_norm = nn.GroupNorm(num_groups, channels, eps=batchnorm.eps, affine=affine, **factory)
    if frozen:
        group_norm.weight = nn.Parameter(batchnorm.weight.detach().clone())
        group_norm.bias = nn.Parameter(batchnorm.bias.detach().clone())
    elif affine:
        group_norm.weight, group_norm.bias = batchnorm.weight, batchnorm.bias
    return group_norm.train(batchnorm.training)


def _standardization_problem(conv: nn.Conv2d) -> str | None:
    if type(conv) not in (nn.Conv2d, Conv2dSame):
        return f"{type(conv).__name__} is a convolution with its own forward, which StdConv2d would drop"
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r}: StdConv2d pads with zeros only"
    if conv.weight[0].numel() == 1:
        return "one weight per filter (a 1x1 depthwise convolution): standardized, it would be zero"
    return None


def _standardized_conv(conv: nn.Conv2d, eps: float) -> nn.Conv2d:
    settings = {"stride": conv.stride, "dilation": conv.dilation, "groups": conv.groups, "bias": conv.bias is not None,
                "eps": eps, "device": conv.weight.device, "dtype": conv.weight.dtype}
    if isinstance(conv, Conv2dSame):  # TF 'SAME' padding, computed from the input size in forward
        standardized = StdConv2dSame(conv.in_channels, conv.out_channels, conv.kernel_size, padding="same",
                                     **settings)
    else:
        standardized = StdConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding,
                                 **settings)
    # The same Parameters: their values, requires_grad and any optimizer's references carry over.
    standardized.weight, standardized.bias = conv.weight, conv.bias
    return standardized.train(conv.training)
