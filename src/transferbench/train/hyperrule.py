"""BiT-HyperRule (Kolesnikov et al. 2020, "Big Transfer"): one fine-tuning recipe chosen from the dataset's size and
its images' area, instead of a grid search.

Both versions: SGD with momentum 0.9, base learning rate 0.003, batch 512, no weight decay, no dropout, a
zero-initialized head; MixUp with alpha 0.1 for datasets of at least 20,000 examples, none below; training images
resized to (precrop x precrop) then randomly cropped to crop x crop and flipped, test images resized to crop x crop.
Images of area below 96 x 96 get (precrop, crop) = (160, 128).

The paper and the released code differ (../shared/reference/paper-facts.md):
- "code" (the default): the released big_transfer code's rule, which produced the published transfer numbers and is
  what reproductions run. Schedule boundaries (end of warm-up, three decays, end): fewer than 20,000 examples
  (100, 200, 300, 400, 500); fewer than 500,000 (500, 3000, 6000, 9000, 10000); else (500, 6000, 12000, 18000,
  20000); the learning rate rises linearly from 0 over the warm-up and is divided by 10 at each decay. Larger images:
  (512, 480), for every model.
- "paper": 500, 10,000 or 20,000 steps by the same size thresholds, divided by 10 at 30%, 60% and 90% of them, no
  warm-up stated; larger images (448, 384), or (512, 480) for the largest model (R152x4: `largest_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("code", "paper")
SMALL_DATASET, LARGE_DATASET = 20_000, 500_000  # examples: the rule's size thresholds
SMALL_IMAGE_AREA = 96 * 96  # pixels: below it, (precrop, crop) = (160, 128)
CODE_SCHEDULES = ((100, 200, 300, 400, 500), (500, 3000, 6000, 9000, 10_000), (500, 6000, 12_000, 18_000, 20_000))
PAPER_STEPS = (500, 10_000, 20_000)


@dataclass(frozen=True)
class HyperRule:
    """One dataset's recipe: `steps` in all, linear warm-up over the first `warmup` steps, the learning rate divided
    by 10 at each step of `decays`; images resized to `precrop` and cropped to `crop` (test: resized to `crop`)."""

    version: str
    steps: int
    warmup: int
    decays: tuple[int, ...]
    precrop: int
    crop: int
    mixup_alpha: float
    base_lr: float = 0.003
    batch_size: int = 512
    momentum: float = 0.9
    weight_decay: float = 0.0


def hyperrule(n_examples: int, image_size: tuple[int, int], version: str = "code", largest_model: bool = False,
              base_lr: float = 0.003, batch_size: int = 512) -> HyperRule:
    """The recipe for a dataset of `n_examples` training examples whose images are `image_size` (height, width)
    (a typical image: datasets of mixed sizes give their most common or median size)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown BiT-HyperRule version {version!r}: expected one of {', '.join(VERSIONS)}")
    if n_examples < 1:
        raise ValueError(f"a dataset of {n_examples} examples has nothing to fine-tune on")
    tier = 0 if n_examples < SMALL_DATASET else 1 if n_examples < LARGE_DATASET else 2
    small_images = image_size[0] * image_size[1] < SMALL_IMAGE_AREA
    mixup = 0.0 if n_examples < SMALL_DATASET else 0.1
    if version == "code":
        warmup, *decays, steps = CODE_SCHEDULES[tier]
        precrop, crop = (160, 128) if small_images else (512, 480)
    else:
        steps, warmup = PAPER_STEPS[tier], 0
        decays = [round(steps * f) for f in (0.3, 0.6, 0.9)]
        precrop, crop = (160, 128) if small_images else (512, 480) if largest_model else (448, 384)
    return HyperRule(version, steps, warmup, tuple(decays), precrop, crop, mixup, base_lr, batch_size)


def learning_rate(rule: HyperRule, step: int) -> float:
    """The learning rate of step `step` (0-based): warm-up from 0, then base_lr / 10^(decays passed)."""
    if step < rule.warmup:
        return rule.base_lr * step / rule.warmup
    return rule.base_lr / 10 ** sum(step >= d for d in rule.decays)
