"""Batched forward passes over a uint8 image cache: device choice, bf16 autocast and channels_last on GPU."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # images imports torchvision (about 2 s): the probe jobs, which need none of it, skip it
    from transferbench.data.images import Preprocessing


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
    return torch.device(requested)


def autocast(device: torch.device):
    """bf16 autocast on GPU; on CPU full float32 (CPU bf16 is slower on most CPUs and changes numbers)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return batch.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return batch


@torch.inference_mode()
def forward_batches(model: nn.Module, images: torch.Tensor, preprocessing: "Preprocessing", device: torch.device,
                    batch_size: int = 256):
    """Yield float32 CPU outputs of `model` in eval mode, batch by batch, for uint8 `images` (N, 3, S, S)."""
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            batch = to_device(preprocessing.evaluation(images[start:start + batch_size]), device)
            with autocast(device):
                yield model(batch).float().cpu()
    finally:
        model.train(was_training)


def predict(model: nn.Module, images: torch.Tensor, preprocessing: "Preprocessing", device: torch.device,
            batch_size: int = 256) -> torch.Tensor:
    """All outputs of `model` on `images` as one (N, ...) float32 tensor."""
    return torch.cat(list(forward_batches(model, images, preprocessing, device, batch_size)))
