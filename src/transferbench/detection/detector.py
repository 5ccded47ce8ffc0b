"""The detector: torchvision's Faster R-CNN with a feature pyramid (FPN) over the study's backbone.

Why Faster R-CNN + FPN: it is the detector of both papers the study follows (Vasconcelos et al. 2022 build on it,
with cascade heads; He et al.'s Rethinking ImageNet Pre-training uses Mask R-CNN, its instance-mask extension),
torchvision builds it from parts around any backbone, and its capacity has independent knobs.

Backbone: the model entry's classifier without its head (the same timm / torchvision / checkpoint / upstream
entries as classification); its last `pyramid_stages` stage outputs (transferbench.models.stages) feed the FPN, plus
one max-pooled level above (torchvision's LastLevelMaxPool).
Backbone states:
- `frozen`: every backbone weight fixed, BatchNorm statistics included (Vasconcelos et al.): only the FPN, the RPN
  and the box head train;
- `finetune`: every backbone weight trains, but BatchNorm layers are frozen (statistics and affine, timm's
  FrozenBatchNorm2d), as in torchvision's detection references and Detectron at small per-device batches;
- `scratch`: randomly initialized, BatchNorm converted to GroupNorm (transferbench.models.normalization), the FPN
  and a convolutional box head (head_convs > 0) with GroupNorm too (Rethinking ImageNet Pre-training's recipe for
  training detectors from scratch).
Capacity (config `detection.capacities`): `fpn_channels` (the pyramid's width), `head_convs` (the box head: 0 is
torchvision's two fully connected layers; n > 0 is n 3x3 convolutions then one fully connected layer, the "4conv1fc"
head of Detectron for n = 4), `head_fc` (the box head's fully connected width, default 1024, torchvision's),
`rpn_convs` (the RPN head's 3x3 convolutions, default 1).
Sampling (training settings, torchvision's defaults): `rpn_proposals` (kept after NMS per image, 2000 in training
and 1000 in testing), `rois_per_image` (512 sampled for the box head's loss).
Anchors: one size per pyramid level, `anchor_scale` (default 8) x the level's stride, aspect ratios 0.5, 1, 2
(torchvision's ResNet-FPN: anchors 32 ... 512 at strides 4 ... 64 from layer1; with the default pyramid_stages 3, a
ResNet's layer2-4, the smallest anchor is 64 px: raise pyramid_stages to 4 for small objects). Images are resized by
Faster R-CNN's own transform to `min_size` / `max_size` (per dataset) and normalized with the backbone's mean and
std.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from transferbench.models.normalization import convert_norm, group_count
from transferbench.models.spec import ModelSpec, build_model
from transferbench.models.stages import describe_stages, freeze_all_but_last, trainable_parameters

STATES = ("frozen", "finetune", "scratch")


class StageBackbone(nn.Module):
    """The classifier's stage outputs as an FPN's inputs: forward returns {'0': ..., '1': ..., 'pool': ...} after the
    pyramid. Stage outputs are caught with forward hooks during `forward_features` (timm) or the whole forward
    (torchvision, whose head is an identity here)."""

    def __init__(self, model: nn.Module, stages: list[str], in_channels: list[int], fpn_channels: int,
                 group_norm: bool):
        super().__init__()
        self.body, self.stages = model, stages
        norm = (lambda c: nn.GroupNorm(group_count(c), c)) if group_norm else None
        self.fpn = FeaturePyramidNetwork(in_channels, fpn_channels, extra_blocks=LastLevelMaxPool(), norm_layer=norm)
        self.out_channels = fpn_channels
        self._caught: dict = {}
        for name in stages:
            model.get_submodule(name).register_forward_hook(
                lambda _m, _i, out, name=name: self._caught.__setitem__(name, out))

    def forward(self, images: torch.Tensor) -> OrderedDict:
        self._caught.clear()
        (self.body.forward_features if hasattr(self.body, "forward_features") else self.body)(images)
        features = OrderedDict((str(i), self._caught[n]) for i, n in enumerate(self.stages))
        self._caught.clear()
        return self.fpn(features)


def build_detector(spec: ModelSpec, num_classes: int, state: str, capacity: dict, settings: dict,
                   min_size: int, max_size: int) -> tuple[FasterRCNN, dict]:
    """(Faster R-CNN for `num_classes` object classes (+ background), a description: stages, strides, anchors,
    trainable and backbone parameters). `settings`: the detection training settings (pyramid_stages,
    anchor_scale)."""
    if state not in STATES:
        raise ValueError(f"unknown backbone state {state!r}: expected one of {', '.join(STATES)}")
    body = build_model(spec, 0, weights=state != "scratch")
    if state == "scratch":
        convert_norm(body, "groupnorm")
    stages = describe_stages(body, min_size)
    wanted = settings.get("pyramid_stages", 3)
    if not 1 <= wanted <= len(stages):
        raise ValueError(f"detection.train.pyramid_stages {wanted}: {spec.name} has {len(stages)} stages "
                         f"({', '.join(s.module for s in stages)}); expected 1 to {len(stages)}")
    stages = stages[-wanted:]
    if state == "frozen":
        freeze_all_but_last(body, 0, min_size)
    elif state == "finetune":
        from timm.utils.model import freeze

        freeze(body, [n for n, m in body.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)])
    backbone = StageBackbone(body, [s.module for s in stages], [s.channels for s in stages],
                             capacity["fpn_channels"], group_norm=state == "scratch")
    strides = [s.reduction for s in stages] + [stages[-1].reduction * 2]  # + the max-pooled level
    scale = settings.get("anchor_scale", 8)
    anchors = AnchorGenerator(tuple((scale * r,) for r in strides), ((0.5, 1.0, 2.0),) * len(strides))
    names = [str(i) for i in range(len(stages))]
    channels = capacity["fpn_channels"]
    convs, fc = capacity.get("head_convs", 0), capacity.get("head_fc", 1024)
    if convs:
        norm = (lambda c: nn.GroupNorm(group_count(c), c)) if state == "scratch" else None
        box_head = FastRCNNConvFCHead((channels, 7, 7), [channels] * convs, [fc], norm_layer=norm)
    else:
        box_head = TwoMLPHead(channels * 7 * 7, fc)
    proposals = settings.get("rpn_proposals", {})
    detector = FasterRCNN(
        backbone, min_size=min_size, max_size=max_size,
        image_mean=list(spec.mean), image_std=list(spec.std), rpn_anchor_generator=anchors,
        rpn_head=RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=capacity.get("rpn_convs", 1)),
        box_roi_pool=MultiScaleRoIAlign(names, output_size=7, sampling_ratio=2), box_head=box_head,
        box_predictor=FastRCNNPredictor(fc, num_classes + 1),
        rpn_pre_nms_top_n_train=proposals.get("train", 2000), rpn_post_nms_top_n_train=proposals.get("train", 2000),
        rpn_pre_nms_top_n_test=proposals.get("test", 1000), rpn_post_nms_top_n_test=proposals.get("test", 1000),
        box_batch_size_per_image=settings.get("rois_per_image", 512),
        box_detections_per_img=settings.get("detections_per_image", 100))
    body_params = sum(p.numel() for p in body.parameters())
    description = {"stages": [s.module for s in stages], "strides": strides,
                   "anchor_sizes": [scale * r for r in strides], "trainable_params": trainable_parameters(detector),
                   "backbone_trainable_params": trainable_parameters(body), "backbone_params": body_params,
                   "detector_params": trainable_parameters(detector) - trainable_parameters(body)}
    return detector, description
