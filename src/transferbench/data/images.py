"""Image decoding and preprocessing.

Each image is decoded once per resolution: resized so its shorter side is `floor(resolution / crop_pct)` (timm's
convention) and centre-cropped to a square of that size, kept as uint8. From that cache:
- evaluation (features, val/test): centre crop of `resolution` (the paper's resize + centre crop), normalized;
- training: random-resized-crop to `resolution` + horizontal flip (the paper's only augmentations), normalized;
  the crops are resampled bilinearly with area averaging (crop_and_resize), whatever the model's interpolation.
The bit mode's crops (BiT-HyperRule) differ: Preprocessing(crops="bit").
"""

from __future__ import annotations

import functools
import io
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from transferbench.data.paper import CIFAR_FILES, cifar_image
from transferbench.data.splits import DatasetSpec
from transferbench.seeding import derive_seed

log = logging.getLogger(__name__)

INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def storage_size(resolution: int, crop_pct: float) -> int:
    return int(math.floor(resolution / crop_pct))


def resize_square(img: Image.Image, size: int, interpolation: str) -> np.ndarray:
    """(size, size, 3) uint8: the image resized so its shorter side is `size`, centre-cropped square."""
    w, h = img.size
    scale = size / min(w, h)
    if (w, h) != (size, size):
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), INTERPOLATION[interpolation])
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.array(img, dtype=np.uint8)  # a writable copy for torch.from_numpy


def to_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def decode_image(data, size: int, interpolation: str) -> torch.Tensor:
    """(3, size, size) uint8 from an encoded image (any format PIL reads), decoded and resized the way every dataset
    image is (resize_square): the bytes of a source image give exactly what DecodedImages gives for it."""
    with Image.open(io.BytesIO(data)) as img:
        return to_chw(resize_square(img.convert("RGB"), size, interpolation))


class DecodedImages(Dataset):
    """Decodes samples of one dataset to (3, S, S) uint8 tensors; used through a DataLoader for parallel decode."""

    def __init__(self, spec: DatasetSpec, ids: list, size: int, interpolation: str):
        self.spec, self.ids, self.size, self.interpolation = spec, ids, size, interpolation
        self._digits = None
        self._cifar_batches = {}  # CIFAR: decoded pickled batches, by file
        if spec.source == "sklearn_digits":
            from sklearn.datasets import load_digits

            self._digits = (load_digits().images * (255 / 16)).round().astype(np.uint8)

    def __len__(self) -> int:
        return len(self.ids)

    def _array(self, sample_id) -> Image.Image | None:
        """The image of a source that holds pixel arrays (scikit-learn's digits, CIFAR's pickles); None for files."""
        if self._digits is not None:
            return Image.fromarray(self._digits[int(sample_id)]).convert("RGB")
        if self.spec.source in CIFAR_FILES:
            return Image.fromarray(cifar_image(Path(self.spec.root), self.spec.source, sample_id, self._cifar_batches))
        return None

    def _path(self, sample_id) -> Path:
        path = Path(self.spec.root) / sample_id
        if not path.is_file():
            raise FileNotFoundError(f"dataset '{self.spec.name}': image {path} is missing; the split file lists it. "
                                    "Rebuild the split if the data changed")
        return path

    def open(self, index: int) -> Image.Image:
        """Sample `index` at its own resolution, as RGB."""
        sample_id = self.ids[index]
        if (array := self._array(sample_id)) is not None:
            return array
        path = self._path(sample_id)
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except OSError as error:
            raise OSError(f"dataset '{self.spec.name}': cannot decode image {path}: {error}") from error

    def source_bytes(self, index: int) -> bytes:
        """Sample `index` as its source stores it: the image file's bytes, or for sources of pixel arrays a lossless
        PNG of them. decode_image of these bytes equals self[index]."""
        sample_id = self.ids[index]
        if (array := self._array(sample_id)) is not None:
            buffer = io.BytesIO()
            array.save(buffer, "PNG")
            return buffer.getvalue()
        return self._path(sample_id).read_bytes()

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_chw(resize_square(self.open(index), self.size, self.interpolation))


def decode_images(spec: DatasetSpec, ids: list, size: int, interpolation: str, num_workers: int = 0,
                  batch_size: int = 256) -> torch.Tensor:
    """All samples `ids` decoded to one uint8 tensor (N, 3, size, size)."""
    loader = DataLoader(DecodedImages(spec, ids, size, interpolation), batch_size=batch_size,
                        num_workers=num_workers)
    start = time.perf_counter()
    out = torch.cat(list(loader)) if ids else torch.empty(0, 3, size, size, dtype=torch.uint8)
    log.info("decoded %d images of '%s' at %d px in %.1fs", len(ids), spec.name, size, time.perf_counter() - start)
    return out


class Preprocessing:
    """Turns cached uint8 batches into normalized float batches at the model's resolution.

    `crops`: "paper" (the default): training images random-resized-cropped, evaluation images centre-cropped to the
    resolution; "bit" (BiT-HyperRule): training images randomly cropped to the resolution at full scale (the cache
    holds them at the rule's pre-crop size), evaluation images resized whole to it.
    """

    CROPS = ("paper", "bit")

    def __init__(self, resolution: int, mean, std, interpolation: str = "bilinear", crops: str = "paper"):
        if crops not in self.CROPS:
            raise ValueError(f"unknown crops {crops!r}: expected one of {', '.join(self.CROPS)}")
        self.resolution = resolution
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.interpolation = interpolation  # of the stored images (decode); training crops resample bilinearly
        self.crops = crops

    def _normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std, in place: `batch` is a fresh float32 tensor owned by the caller."""
        return batch.sub_(self.mean).div_(self.std)

    def evaluation(self, batch: torch.Tensor) -> torch.Tensor:
        """Centre crop to the model's resolution (the cache is already resized), then normalize. BiT's crops: the
        whole stored image resized to the resolution (crop_and_resize, area-averaging)."""
        size = batch.shape[-1]
        if self.crops == "bit":
            whole = torch.tensor([[0, 0, batch.shape[-1], batch.shape[-2]]], dtype=torch.float32).expand(len(batch), 4)
            return self._normalize(crop_and_resize(batch.float(), whole, self.resolution))
        offset = (size - self.resolution) // 2
        crop = batch[..., offset:offset + self.resolution, offset:offset + self.resolution]
        return self._normalize(crop.to(torch.float32, copy=True))

    def training(self, batch: torch.Tensor, crop_scale, flip: bool, seed: int, step: int = 0) -> torch.Tensor:
        """Random-resized-crop to the model's resolution (torchvision's box distribution: area fraction uniform in
        `crop_scale`, log aspect ratio uniform in [3/4, 4/3], 10 tries then a centre crop) and an optional
        horizontal flip, then normalize.

        The whole batch is cropped and resized at once (crop_and_resize: bilinear, area-averaging when a box is
        larger than the output, like an antialiased resize); per-image transforms in Python cost more than the
        forward pass of small models. The draws of `step` depend on (seed, step) only (crop_draws), so a resumed
        job replays exactly the augmentations an uninterrupted one would have drawn.
        """
        if self.crops == "bit":  # a resolution-sized box at a random position: the crop is the stored pixels
            boxes, mirror = fixed_crop_draws(seed, step, len(batch), batch.shape[-2], batch.shape[-1],
                                             self.resolution, flip)
        else:
            boxes, mirror = crop_draws(seed, step, len(batch), batch.shape[-2], batch.shape[-1], tuple(crop_scale),
                                       flip)
        return self._normalize(crop_and_resize(batch.float(), boxes, self.resolution, mirror))


DRAWS_PER_CHUNK = 64  # steps whose crops are drawn in one vectorized call


def crop_draws(seed: int, step: int, n: int, height: int, width: int, crop_scale: tuple, flip: bool):
    """(boxes (n, 4), mirror (n,) bool or None) of one training step. Drawn 64 steps at a time from a generator
    seeded by (seed, chunk): one numpy call instead of 64 (per-step draws cost as much as the forward pass of the
    smallest models), and still a function of (seed, step) alone."""
    chunk, offset = divmod(step, DRAWS_PER_CHUNK)
    boxes, mirror = _chunk_draws(seed, chunk, n, height, width, crop_scale, flip)
    return boxes[offset * n:(offset + 1) * n], (mirror[offset * n:(offset + 1) * n] if flip else None)


@functools.lru_cache(maxsize=2)
def _chunk_draws(seed, chunk, n, height, width, crop_scale, flip):
    rng = np.random.default_rng(derive_seed(seed, "augment", chunk))
    boxes = random_resized_crop_boxes(n * DRAWS_PER_CHUNK, height, width, crop_scale, rng)
    return boxes, rng.random(n * DRAWS_PER_CHUNK) < 0.5


def fixed_crop_draws(seed: int, step: int, n: int, height: int, width: int, side: int, flip: bool):
    """(boxes (n, 4), mirror (n,) bool or None) of one training step's fixed-size random crops (BiT's: `side` x
    `side` at a uniformly drawn whole-pixel position), from (seed, step) alone."""
    if side > min(height, width):
        raise ValueError(f"a {side} px crop does not fit {height} x {width} px images")
    rng = np.random.default_rng(derive_seed(seed, "fixed_crop", step))
    left, top = rng.integers(0, width - side + 1, n), rng.integers(0, height - side + 1, n)
    boxes = torch.from_numpy(np.stack([left, top, left + side, top + side], axis=1).astype(np.float32))
    return boxes, (rng.random(n) < 0.5 if flip else None)


def crop_and_resize(images: torch.Tensor, boxes: torch.Tensor, size: int, mirror=None) -> torch.Tensor:
    """Each image's box (x1, y1, x2, y2 in pixels) resampled to size x size, for the whole batch in a few calls;
    images where `mirror` (bool (n,)) is set come out flipped horizontally.

    Exactly torchvision's roi_align(aligned=True, sampling_ratio=-1): bilinear samples at the output pixel centres
    (edges clamped), k_h x k_w of them per output pixel averaged, k = ceil(box side / size) per dimension (area
    averaging when shrinking). Done with grid_sample on a sampling grid built per box (a flip is the same grid
    read right to left), one call per group of boxes with the same (k_h, k_w): several times faster than
    roi_align on CPU, which mattered for small models.
    """
    n, channels, height, width = images.shape
    # per-box arithmetic in numpy: on vectors of a batch's length its calls cost a fraction of torch's
    x1, y1, x2, y2 = np.asarray(boxes, dtype=np.float64).T
    factors = np.maximum(np.ceil(np.stack([y2 - y1, x2 - x1], 1) / size), 1).astype(np.int64)
    sign = 1 - 2 * np.asarray(mirror, dtype=np.float64) if mirror is not None else np.ones(n)
    # grid_sample's normalized coordinates (align_corners=False) of each box's sample points: centre + half-size * u
    x_centre, x_half = (x1 + x2) / width - 1, sign * (x2 - x1) / width
    y_centre, y_half = (y1 + y2) / height - 1, (y2 - y1) / height

    def resample(chosen, kh, kw):
        u = np.arange(1, 2 * size * kw, 2) / (size * kw) - 1  # output sample positions in [-1, 1]
        v = np.arange(1, 2 * size * kh, 2) / (size * kh) - 1
        gx = torch.from_numpy((x_centre[chosen, None] + x_half[chosen, None] * u).astype(np.float32))
        gy = torch.from_numpy((y_centre[chosen, None] + y_half[chosen, None] * v).astype(np.float32))
        grid = torch.empty(len(gx), size * kh, size * kw, 2)
        grid[..., 0], grid[..., 1] = gx[:, None, :], gy[:, :, None]
        sampled = torch.nn.functional.grid_sample(images[chosen], grid, mode="bilinear", padding_mode="border",
                                                  align_corners=False)
        return torch.nn.functional.avg_pool2d(sampled, (kh, kw)) if kh * kw > 1 else sampled

    if (factors == factors[0]).all():  # the common case: one call, no gather
        return resample(slice(None), *factors[0].tolist())
    out = torch.empty(n, channels, size, size)
    for kh, kw in np.unique(factors, axis=0).tolist():
        chosen = np.flatnonzero((factors[:, 0] == kh) & (factors[:, 1] == kw))
        out[torch.from_numpy(chosen)] = resample(chosen, kh, kw)
    return out


def random_resized_crop_boxes(n: int, height: int, width: int, scale, rng: np.random.Generator,
                              ratio=(3 / 4, 4 / 3), tries: int = 10) -> torch.Tensor:
    """(n, 4) boxes x1, y1, x2, y2 in pixel coordinates, drawn as torchvision's RandomResizedCrop.get_params does
    (10 tries, then the largest centre crop with the aspect ratio clamped), for the whole batch at once. numpy:
    for a batch of boxes its vectorized draws cost a fraction of torch's per-call overhead."""
    target = height * width * rng.uniform(scale[0], scale[1], (n, tries))
    aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), (n, tries)))
    w, h = np.round(np.sqrt(target * aspect)), np.round(np.sqrt(target / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.argmax(1)
    found = valid[np.arange(n), first]
    u = rng.random((n, 2))
    in_ratio = width / height
    fw, fh = ((width, round(width / ratio[0])) if in_ratio < ratio[0] else
              (round(height * ratio[1]), height) if in_ratio > ratio[1] else (width, height))
    bw = np.where(found, w[np.arange(n), first], fw)
    bh = np.where(found, h[np.arange(n), first], fh)
    top = np.where(found, np.floor(u[:, 0] * (height - bh + 1)), np.floor((height - bh) / 2))
    left = np.where(found, np.floor(u[:, 1] * (width - bw + 1)), np.floor((width - bw) / 2))
    return torch.from_numpy(np.stack([left, top, left + bw, top + bh], axis=1).astype(np.float32))
