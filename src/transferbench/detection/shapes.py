"""The offline demo's detection dataset: coloured shapes on a noisy textured background, written in COCO's layout.

Each image holds 1..max_objects shapes of 3 classes (square, disc, triangle; labels 1..3), each a random palette
colour, of side min_side..max_side pixels and wholly inside the image. Shapes may overlap a little (at most 20% of
the smaller one's box); a box is the tight bound of the shape's visible pixels, so an occluded edge is not boxed.
The background and noise are synthetic.py's, so the detection demo's images look like the classification demo's.

Layout under root: images/{train,test}/<n>.png and annotations/instances_{train,test}.json (file_name relative to
root). Everything derives from the seed: the same arguments write the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from transferbench.atomic import atomic_path
from transferbench.data.synthetic import PALETTE, _background, _finish
from transferbench.detection.annotations import BoxDataset, ImageBoxes, write_coco
from transferbench.seeding import derive_seed

log = logging.getLogger(__name__)

CLASSES = ("square", "disc", "triangle")
NOISE = 0.08  # as the classification demo's images
MAX_OVERLAP = 0.2  # of the smaller box: keeps every shape mostly visible
PLACEMENT_TRIES = 20


def _mask(shape: str, u, v, side: int):
    """Boolean mask of `shape` in its side x side square, (u, v) being pixel centres relative to its top-left."""
    inside = (u > 0) & (u < side) & (v > 0) & (v < side)
    if shape == "square":
        return inside
    if shape == "disc":
        return (u - side / 2) ** 2 + (v - side / 2) ** 2 < (side / 2) ** 2
    if shape == "triangle":  # apex at the top, base along the bottom
        return inside & (np.abs(u - side / 2) <= v / 2 + 0.5)
    raise ValueError(f"unknown shape {shape!r}: expected one of {', '.join(CLASSES)}")


def _overlap(a, b) -> float:
    """Intersection of boxes a and b over the smaller one's area."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    return w * h / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def draw_detection_image(rng, size: int, max_objects: int, min_side: int, max_side: int):
    """One image: (uint8 (size, size, 3), boxes (n, 4) float32, labels (n,) int64 in 1..3)."""
    img = _background(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5  # pixel centres
    placed = []  # (box, class index)
    for _ in range(rng.integers(1, max_objects + 1)):
        for _ in range(PLACEMENT_TRIES):  # a shape that finds no free place within the tries is left out
            side = int(rng.integers(min_side, max_side + 1))
            x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
            box = (x0, y0, x0 + side, y0 + side)
            if all(_overlap(box, other) <= MAX_OVERLAP for other, _ in placed):
                placed.append((box, int(rng.integers(len(CLASSES)))))
                break
    masks = [_mask(CLASSES[c], xx - box[0], yy - box[1], box[2] - box[0]) for box, c in placed]
    for mask in masks:
        img[mask] = PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.75, 1.0)
    boxes, labels = [], []
    covered = np.zeros((size, size), dtype=bool)
    for mask, (_, c) in zip(masks[::-1], placed[::-1]):  # from the top shape down: what later shapes leave visible
        visible = mask & ~covered
        covered |= mask
        if visible.any():
            rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
            boxes.append((cols[0], rows[0], cols[-1] + 1, rows[-1] + 1))  # pixel i spans [i, i + 1)
            labels.append(c + 1)
    return (_finish(rng, img, NOISE), np.array(boxes[::-1], dtype=np.float32).reshape(-1, 4),
            np.array(labels[::-1], dtype=np.int64))


def write_shapes_detection(root, *, train_images: int = 160, test_images: int = 60, image_size: int = 64,
                           max_objects: int = 3, min_side: int = 10, max_side: int = 28, seed: int = 0) -> dict:
    """Write the dataset under `root` (which must not exist or be empty) and return a summary: the classes and, per
    split, the number of images and boxes. `root` appears complete or not at all (built under a temporary name)."""
    if not 2 <= min_side <= max_side <= image_size:
        raise ValueError(f"shape sides {min_side}..{max_side} do not fit: expected 2 <= min_side <= max_side <= "
                         f"image_size ({image_size})")
    if max_objects < 1:
        raise ValueError(f"max_objects={max_objects}: expected at least 1 shape per image")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not empty; remove it to write the shapes detection dataset")
    summary = {"classes": list(CLASSES), "image_size": image_size, "seed": seed}
    with atomic_path(root) as tmp:
        for split, n_images in (("train", train_images), ("test", test_images)):
            (tmp / "images" / split).mkdir(parents=True)
            images = []
            for n in range(n_images):
                rng = np.random.default_rng(derive_seed(seed, "shapes_detection", split, n))
                pixels, boxes, labels = draw_detection_image(rng, image_size, max_objects, min_side, max_side)
                file = f"images/{split}/{n}.png"
                Image.fromarray(pixels).save(tmp / file)
                images.append(ImageBoxes(image_id=str(n), file=file, width=image_size, height=image_size,
                                         boxes=boxes, labels=labels, difficult=np.zeros(len(labels), dtype=bool)))
            dataset = BoxDataset(classes=list(CLASSES), images=images)
            write_coco(dataset, tmp / "annotations" / f"instances_{split}.json")
            summary[split] = {"images": n_images, "boxes": dataset.n_boxes}
            log.info("shapes detection: wrote %d %s images with %d boxes", n_images, split, dataset.n_boxes)
    return summary
