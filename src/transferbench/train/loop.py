"""The SGD training loop of the fine-tune and from-scratch modes (and of the demo's upstream pretraining).

Protocol (Kornblith et al. 2019; options for BiT-HyperRule: a `steps` schedule with warm-up, MixUp): SGD with
Nesterov momentum, cosine decay to zero with no warm-up, batch 256,
random-resized-crop + flip, BN momentum max(1 - 10/steps_per_epoch, 0.9) in TensorFlow's convention (PyTorch's
`momentum` is one minus that). Weight decay convention: with `weight_decay_divided_by_lr`, the grid value is the
decay per step and SGD gets value / lr (SimCLR's appendix).

Reliability: the batch order and augmentation of every step derive from (seed, step), and a checkpoint holds the
model, optimizer, schedule and curve, so a job killed and restarted from its checkpoint ends exactly where an
uninterrupted one would. SIGTERM (what SLURM sends before preemption) saves a checkpoint and stops the job.
A NaN or inf loss stops the run and marks it diverged, with a chance-level metric. `batch_split` (default 1) runs each
batch as that many chunks whose gradients add up to the batch's (BatchNorm then normalizes per chunk).

Loss: cross-entropy for single-label data (labels (n,)), with optional label smoothing; for multi-label data (labels
a 0/1 matrix (n, K), as PASCAL VOC 2007) the sigmoid loss, summed over classes and averaged over the batch (K binary
problems). A model with an auxiliary classifier (the demo CNN's aux_head) adds its loss times `aux_weight`.
"""

from __future__ import annotations

import functools
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from transferbench import metrics
from transferbench.atomic import atomic_path
from transferbench.data.images import Preprocessing
from transferbench.inference import autocast, predict, prepare_model, to_device
from transferbench.seeding import derive_seed

log = logging.getLogger(__name__)


class Preempted(RuntimeError):
    """Raised after SIGTERM once the checkpoint is saved: the job fails now and resumes when rerun."""


@dataclass
class TrainResult:
    metric: float  # on the evaluation split, at the end (chance level when diverged)
    diverged: bool
    steps: int  # steps actually run
    images_seen: int
    wall_time_s: float
    curve: list = field(default_factory=list)  # [{step, loss, metric}] at every evaluation
    outputs: np.ndarray | None = None  # final class scores on the evaluation split

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("outputs")
        return out


def bn_momentum(steps_per_epoch: float) -> float:
    """PyTorch BN momentum for the paper's TF decay max(1 - 10/steps_per_epoch, 0.9)."""
    return 1.0 - max(1.0 - 10.0 / steps_per_epoch, 0.9)


def total_steps(settings: dict) -> int:
    return max(1, round(settings["steps"] * settings.get("schedule_multiplier", 1)))


def lr_factor(settings: dict, steps: int, step: int) -> float:
    """The learning rate of `step` as a fraction of the grid's: a linear warm-up over `warmup_steps` (default 0),
    then the schedule: `cosine` (the paper's, the default: decay to zero at `steps`) or `steps` (divided by 10 at each
    of `decay_steps`, BiT-HyperRule's)."""
    warmup = settings.get("warmup_steps", 0)
    if step < warmup:
        return step / warmup
    if settings.get("schedule", "cosine") == "steps":
        return 0.1 ** sum(step >= d for d in settings.get("decay_steps", []))
    return 0.5 * (1 + math.cos(math.pi * step / steps))


@dataclass(frozen=True)
class Mixup:
    """One step's MixUp (Zhang et al. 2018): each image blended with its `partner`'s, `weight` of its own."""

    weight: float
    partner: torch.Tensor

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.mul(self.weight).add_(batch[self.partner], alpha=1 - self.weight)


def mixup(alpha: float, seed: int, step: int, n: int) -> Mixup | None:
    """The MixUp of one step (None at alpha 0): weight ~ Beta(alpha, alpha) and a permutation of the batch, drawn
    from (seed, step) alone, so a resumed job replays it."""
    if not alpha:
        return None
    rng = np.random.default_rng(derive_seed(seed, "mixup", step))
    return Mixup(float(rng.beta(alpha, alpha)), torch.as_tensor(rng.permutation(n)))


def sgd_weight_decay(lr: float, weight_decay: float, divided_by_lr: bool) -> float:
    return weight_decay / lr if divided_by_lr else weight_decay


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy (targets (b,) class indices; `label_smoothing` as torch's: the target puts 1 - e on its class
    and e / K on every class) or the multi-label sigmoid loss (targets (b, K) of 0/1; no smoothing)."""
    if targets.ndim == 2:
        return nn.functional.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum") / len(targets)
    return nn.functional.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def training_loss(outputs, targets: torch.Tensor, settings: dict) -> torch.Tensor:
    """The loss of one step: the classifier's, plus `aux_weight` times the auxiliary classifier's where the model
    returns (logits, aux logits) in training mode (the demo CNN's aux_head; the aux head is ignored at weight 0)."""
    logits, aux = outputs if isinstance(outputs, tuple) else (outputs, None)
    smoothing = settings.get("label_smoothing", 0.0)
    loss = classification_loss(logits, targets, smoothing)
    weight = settings.get("aux_weight", 0.0)
    if aux is not None and weight:
        loss = loss + weight * classification_loss(aux, targets, smoothing)
    return loss


@functools.lru_cache(maxsize=4)
def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The seeded order of epoch `epoch` (drawn once per epoch, not at every step: randperm of Food-101's 60k
    indices costs about 1 ms)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch)))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Indices of the batch at `step`: consecutive slices of a stream of per-epoch seeded permutations."""
    start, stop = step * batch_size, (step + 1) * batch_size
    parts = []
    for epoch in range(start // n, (stop - 1) // n + 1):
        lo, hi = max(start - epoch * n, 0), min(stop - epoch * n, n)
        parts.append(epoch_permutation(n, seed, epoch)[lo:hi])
    return torch.cat(parts)


class StepBatches(Dataset):
    """Item `step`: (indices, uint8 images) of that step's batch (batch_indices), so that DataLoader workers read and
    decode the coming steps' batches while the model trains on this one."""

    def __init__(self, images, batch_size: int, seed: int):
        self.images, self.batch_size, self.seed = images, batch_size, seed

    def __getitem__(self, step: int):
        index = batch_indices(step, self.batch_size, len(self.images), self.seed)
        return index, self.images[index]


def resume(checkpoint: Path | None, model: nn.Module, optimizer, schedule, device: torch.device, state: dict,
           steps: int) -> dict:
    """The loop's state: from `checkpoint` where it exists (the model, optimizer and schedule loaded in place), else
    `state` as given. Shared by every resumable training loop (classification, detection)."""
    if checkpoint is None or not checkpoint.exists():
        return state
    saved = torch.load(checkpoint, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    log.info("resumed from %s at step %d of %d", checkpoint, saved["state"]["step"], steps)
    return saved["state"]


def save_checkpoint(checkpoint: Path | None, model: nn.Module, optimizer, schedule, state: dict) -> None:
    """What `resume` reads, written atomically (a job killed mid-write leaves the previous checkpoint)."""
    if checkpoint is not None:
        with atomic_path(checkpoint) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "state": state}, tmp)


def _leave_sigterm_to_the_main_process(worker_id: int) -> None:
    # SLURM signals every process of a job: the main process checkpoints, then stops its workers itself
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _SigtermFlag:
    """Records SIGTERM instead of dying, so the loop can checkpoint first. Restores the old handler on exit."""

    def __init__(self):
        self.raised = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        log.warning("SIGTERM received: checkpointing at the end of this step")
        self.raised = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._old)


def train_classifier(model: nn.Module, train_images: torch.Tensor, train_labels: np.ndarray,
                     eval_images: torch.Tensor, eval_labels: np.ndarray, preprocessing: Preprocessing,
                     settings: dict, lr: float, weight_decay: float, metric: str, seed: int,
                     device: torch.device, checkpoint: str | Path | None = None) -> TrainResult:
    """Train `model` (already carrying its head) on uint8 `train_images` and score it on `eval_images`.

    Images are anything indexed like a uint8 tensor (N, 3, S, S): a tensor, or image_cache.CachedImages, which reads
    and decodes only the batches asked for, so memory does not grow with the dataset. Batches are read ahead by
    `settings["num_workers"]` DataLoader workers (0: in this process); a step's batch depends on (seed, step) only.
    Evaluation runs in batches of the training batch size (outputs do not depend on it).
    `settings` are the mode's training settings (config.training_settings). `checkpoint` is where resumable state
    lives; it is read if present, written every `checkpoint_every` steps and on SIGTERM, and removed at the end.
    """
    steps = total_steps(settings)
    batch_size = settings["batch_size"]
    n = len(train_images)
    model = prepare_model(model, device)
    if settings.get("bn_momentum_rule", True):
        momentum = bn_momentum(n / batch_size)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=settings["momentum"],
                                nesterov=settings["nesterov"] and settings["momentum"] > 0,
                                weight_decay=sgd_weight_decay(lr, weight_decay, settings["weight_decay_divided_by_lr"]))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, settings, steps))
    labels = torch.as_tensor(train_labels)
    checkpoint = Path(checkpoint) if checkpoint else None
    state = resume(checkpoint, model, optimizer, schedule, device, {"step": 0, "curve": [], "wall_time_s": 0.0}, steps)

    def evaluate():  # at the training batch size: a job's memory is set by its batch size, not the eval split's
        outputs = predict(model, eval_images, preprocessing, device, batch_size)
        return outputs, metrics.score(metric, eval_labels, outputs.numpy())

    eval_every = settings.get("eval_every", steps)
    checkpoint_every = settings.get("checkpoint_every", steps)
    log_every = max(1, steps // 10)
    diverged, loss_value = False, float("nan")
    started, first_step = time.perf_counter(), state["step"]
    workers = settings.get("num_workers", 0)
    batches = iter(DataLoader(StepBatches(train_images, batch_size, seed), batch_size=None,
                              sampler=range(state["step"], steps), num_workers=workers,
                              pin_memory=device.type == "cuda",
                              worker_init_fn=_leave_sigterm_to_the_main_process if workers else None))
    model.train()
    with _SigtermFlag() as sigterm:
        while state["step"] < steps:
            step = state["step"]
            index, images = next(batches)
            inputs = preprocessing.training(images, settings["crop_scale"], settings["flip"], seed, step)
            targets = labels[index]
            mix = mixup(settings.get("mixup_alpha", 0.0), seed, step, len(index))
            if mix is not None:
                inputs = mix.images(inputs)
                partners = targets[mix.partner]
            optimizer.zero_grad(set_to_none=True)
            loss_value = 0.0
            # batch_split chunks: each chunk's mean loss weighted by its share, so the gradients add up to the
            # whole batch's (BiT's batch_split; memory for large batches at high resolution)
            chunks = settings.get("batch_split", 1)
            edges = [round(i * len(index) / chunks) for i in range(chunks + 1)]
            for part in (slice(lo, hi) for lo, hi in zip(edges, edges[1:]) if hi > lo):
                share = (part.stop - part.start) / len(index)
                with autocast(device):
                    outputs = model(to_device(inputs[part], device))
                    loss = training_loss(outputs, targets[part].to(device), settings)
                    if mix is not None:  # the loss is linear in the target: mixing the losses mixes the targets
                        loss = mix.weight * loss + (1 - mix.weight) * training_loss(
                            outputs, partners[part].to(device), settings)
                    loss = loss * share
                loss.backward()
                loss_value += float(loss.detach())
            if not math.isfinite(loss_value):
                log.warning("loss is %s at step %d: run diverged", loss_value, step)
                diverged = True
                break
            optimizer.step()
            schedule.step()
            state["step"] = step + 1
            done = state["step"]
            if done % eval_every == 0 and done < steps:
                state["curve"].append({"step": done, "loss": loss_value, "metric": evaluate()[1]})
                model.train()
            if done % log_every == 0 or done == steps:
                elapsed = time.perf_counter() - started
                rate = (done - first_step) * batch_size / max(elapsed, 1e-9)
                eta = (steps - done) * batch_size / max(rate, 1e-9)
                log.info("step %d/%d loss %.4f lr %.3g %.0f img/s eta %.0fs", done, steps, loss_value,
                         schedule.get_last_lr()[0], rate, eta)
            if sigterm.raised or (done % checkpoint_every == 0 and done < steps):
                state["wall_time_s"] += time.perf_counter() - started
                started, first_step = time.perf_counter(), done
                save_checkpoint(checkpoint, model, optimizer, schedule, state)
                if sigterm.raised:
                    raise Preempted(f"stopped by SIGTERM at step {done}/{steps}; checkpoint {checkpoint} saved; "
                                    "rerun the job to resume")
    del batches  # stops the workers before the final evaluation
    wall_time = state["wall_time_s"] + time.perf_counter() - started
    if not diverged:
        outputs, value = evaluate()
        state["curve"].append({"step": state["step"], "loss": loss_value, "metric": value})
        outputs = outputs.numpy()
        if not np.isfinite(outputs).all():
            log.warning("non-finite outputs on the evaluation split: run diverged")
            diverged = True
    if diverged:
        value, outputs = metrics.chance_level(metric, eval_labels), None
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()
    return TrainResult(metric=value, diverged=diverged, steps=state["step"], images_seen=state["step"] * batch_size,
                       wall_time_s=wall_time, curve=state["curve"], outputs=outputs)
