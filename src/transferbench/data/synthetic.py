"""Generated image datasets of the offline demo study, written to disk in ImageFolder layout.

The demo needs an upstream task that plays ImageNet's part and downstream tasks that reuse what it teaches,
with no download. All three draw coloured shapes on a noisy textured background:
- `shapes`: upstream; class = shape x colour (8 shapes x 8 colours = 64 classes); position, size, background vary.
- `newshapes`: coarse downstream; class = one of 10 shapes that the upstream task never shows, colour random.
- `marks`: fine-grained downstream; every image shows the same large disc of random colour, and the class is
  only a small mark on it: mark colour (4) x mark form (dot, horizontal bar, vertical bar) = 12 classes.
  All marks are mirror-symmetric, so the paper's horizontal-flip augmentation keeps labels valid.
Everything derives from the seed: the same config writes the same pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from transferbench.atomic import atomic_path, write_json
from transferbench.seeding import derive_seed

log = logging.getLogger(__name__)

PALETTE = np.array([
    [0.90, 0.10, 0.10], [0.10, 0.75, 0.15], [0.15, 0.30, 0.95], [0.95, 0.85, 0.10],
    [0.85, 0.15, 0.85], [0.10, 0.85, 0.85], [0.95, 0.55, 0.10], [0.95, 0.95, 0.95],
])


def _shape_mask(shape: str, dx, dy, r):
    """Boolean mask of `shape` centred at offsets (dx, dy) with radius r."""
    d = np.hypot(dx, dy)
    ax, ay = np.abs(dx), np.abs(dy)
    masks = {
        # upstream shapes
        "circle": d < r,
        "square": np.maximum(ax, ay) < 0.8 * r,
        "diamond": ax + ay < r,
        "ring": (d < r) & (d > 0.55 * r),
        "cross": ((ax < 0.3 * r) & (ay < r)) | ((ay < 0.3 * r) & (ax < r)),
        "hbar": (ay < 0.3 * r) & (ax < r),
        "vbar": (ax < 0.3 * r) & (ay < r),
        "triangle": (dy > -0.8 * r) & (dy < 0.7 * r) & (ax < 0.6 * (dy + 0.8 * r)),
        # downstream shapes, never seen upstream
        "ellipse": (dx / r) ** 2 + (dy / (0.5 * r)) ** 2 < 1,
        "frame": (np.maximum(ax, ay) < 0.9 * r) & (np.maximum(ax, ay) > 0.55 * r),
        "xshape": ((np.abs(dx - dy) < 0.35 * r) | (np.abs(dx + dy) < 0.35 * r)) & (d < r),
        "halfdisc": (d < r) & (dy > 0),
        "crescent": (d < r) & (np.hypot(dx - 0.45 * r, dy) > 0.75 * r),
        "tee": ((np.abs(dy + 0.7 * r) < 0.25 * r) & (ax < r)) | ((ax < 0.25 * r) & (ay < r)),
        "hourglass": (ax < ay) & (ay < r),
        "checker": (d < r) & ((np.floor(dx / (0.5 * r)) + np.floor(dy / (0.5 * r))) % 2 == 0),
        "dots": (np.hypot(dx + 0.55 * r, dy) < 0.3 * r) | (np.hypot(dx, dy) < 0.3 * r)
        | (np.hypot(dx - 0.55 * r, dy) < 0.3 * r),
        "wedge": (d < r) & (dy < -np.abs(dx) * 0.3),
    }
    return masks[shape]


UPSTREAM_SHAPES = ("circle", "square", "diamond", "ring", "cross", "hbar", "vbar", "triangle")
NEW_SHAPES = ("ellipse", "frame", "xshape", "halfdisc", "crescent", "tee", "hourglass", "checker", "dots", "wedge")
MARK_FORMS = ("dot", "hbar", "vbar")


def _background(rng, size):
    """A dark, smoothly varying colour field: low-frequency noise upsampled to `size`."""
    coarse = rng.uniform(0.0, 0.45, size=(4, 4, 3)).astype(np.float32)
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255


def _grid(size):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def _paint(img, mask, colour):
    img[mask] = colour


def _finish(rng, img, noise):
    img = img + rng.normal(0, noise, size=img.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def photo_like(rng, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 that image codecs see as a photograph: a random colour field whose amplitude spectrum
    falls as 1/f^1.5 (photographs: about 1/f to 1/f^2), channels mixed as colours are, plus a little sensor noise.
    At 500 x 375 a quality-90 JPEG of it takes about 50 KB, as a typical photograph of that size does."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(fx, fy).astype(np.float32)
    frequency[0, 0] = np.inf  # no mean term: the brightness is set below
    shape = (3, *frequency.shape)
    spectra = frequency ** -1.5 * (rng.standard_normal(shape, np.float32) + 1j * rng.standard_normal(shape, np.float32))
    fields = np.fft.irfft2(spectra, s=(height, width))
    colours = np.eye(3, dtype=np.float32) + rng.normal(0, 0.4, (3, 3)).astype(np.float32)
    mixed = np.einsum("ij,jhw->ihw", colours, fields)
    image = mixed * (50 / mixed.std()) + rng.uniform(60, 190, (3, 1, 1)).astype(np.float32)
    image += rng.standard_normal(image.shape, np.float32) * 2
    return np.clip(image, 0, 255).round().astype(np.uint8).transpose(1, 2, 0)


def draw_shape(rng, size, shape, colour, noise):
    """One image of `shape` in `colour` at a random position and size on a random background."""
    img = _background(rng, size)
    xx, yy = _grid(size)
    r = rng.uniform(0.22, 0.36) * size
    cx, cy = rng.uniform(r, size - r, size=2)
    _paint(img, _shape_mask(shape, xx - cx, yy - cy, r), colour * rng.uniform(0.75, 1.0))
    return _finish(rng, img, noise)


def draw_mark(rng, size, mark_colour, form, noise):
    """One image of the common disc carrying a small mark of `form` in `mark_colour`."""
    img = _background(rng, size)
    xx, yy = _grid(size)
    r = rng.uniform(0.32, 0.42) * size
    cx, cy = rng.uniform(r, size - r, size=2)
    body = PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.45, 0.65)
    _paint(img, np.hypot(xx - cx, yy - cy) < r, body)
    m = 0.13 * size
    dx, dy = np.abs(xx - cx), np.abs(yy - cy)
    mark = {"dot": np.hypot(dx, dy) < 0.6 * m, "hbar": (dy < 0.3 * m) & (dx < m), "vbar": (dx < 0.3 * m) & (dy < m)}
    _paint(img, mark[form], mark_colour)
    return _finish(rng, img, noise)


def class_drawers(generator: str):
    """The classes of a generator: a list of (class name, function(rng, size, noise) -> uint8 image)."""
    if generator == "shapes":
        return [(f"{s}_{c}", lambda rng, size, noise, s=s, c=c: draw_shape(rng, size, s, PALETTE[c], noise))
                for s in UPSTREAM_SHAPES for c in range(len(PALETTE))]
    if generator == "newshapes":
        return [(s, lambda rng, size, noise, s=s: draw_shape(rng, size, s, PALETTE[rng.integers(len(PALETTE))], noise))
                for s in NEW_SHAPES]
    if generator == "marks":
        return [(f"{f}_{c}", lambda rng, size, noise, f=f, c=c: draw_mark(rng, size, PALETTE[c], f, noise))
                for c in range(4) for f in MARK_FORMS]
    raise ValueError(f"unknown generator {generator!r}: expected one of shapes, newshapes, marks")


GENERATORS = ("shapes", "newshapes", "marks")


def generate_imagefolder(out_dir, generator: str, train_per_class: int, test_per_class: int, size: int = 32,
                         noise: float = 0.08, classes: int | None = None, seed: int = 0) -> dict:
    """Write `out_dir/{train,test}/{class}/{index}.png` and `out_dir/info.json`; return the info.

    The directory appears complete or not at all: it is built under a temporary name and renamed.
    `classes` keeps only the first `classes` classes of the generator.
    """
    drawers = class_drawers(generator)[:classes]
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        for split, per_class in (("train", train_per_class), ("test", test_per_class)):
            for name, draw in drawers:
                rng = np.random.default_rng(derive_seed(seed, generator, split, name))
                folder = tmp / split / name
                folder.mkdir(parents=True)
                for i in range(per_class):
                    Image.fromarray(draw(rng, size, noise)).save(folder / f"{i:05d}.png")
            log.info("%s: wrote %d classes x %d %s images", generator, len(drawers), per_class, split)
        info = {"generator": generator, "classes": [n for n, _ in drawers], "size": size, "noise": noise,
                "train_per_class": train_per_class, "test_per_class": test_per_class, "seed": seed}
        write_json(tmp / "info.json", info)
    return info
