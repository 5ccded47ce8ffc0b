"""A detection dataset's source, its split and its images.

Sources (config `detection.datasets.<name>.source`):
- `coco`: any COCO-format dataset a researcher brings: `train` and `test` each an `instances` file and an `images`
  folder (COCO 2017: instances_train2017.json + train2017/, and instances_val2017.json + val2017/ as the test set);
- `voc2007`: PASCAL VOC 2007 from the devkit under `root` (or the config's data_root): trainval for training, test
  for testing (boxes from the annotation XML; `difficult` boxes ignored in evaluation as the VOC protocol says, and
  not trained on);
- `generated`: the demo's shapes on noisy backgrounds (transferbench.detection.shapes), written as COCO-format files
  by the workflow and read through the `coco` reader.

Split: the source's test set is the test split; val is a seeded random `val_fraction` of the training images (the
classification study's convention: selection on val, the final fit on train + val). The split file lists image ids
per split with the annotations' exclusion counts and a hash of the whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from transferbench.atomic import read_json, write_json
from transferbench.detection.annotations import BoxDataset, read_coco, read_voc2007_boxes
from transferbench.seeding import derive_seed

log = logging.getLogger(__name__)

SOURCES = ("coco", "voc2007", "generated")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DetectionDatasetSpec:
    name: str
    source: str
    metric: str
    root: str | None = None  # voc2007: the folder holding VOCdevkit/; generated: the workflow's output folder
    train: dict = field(default_factory=dict)  # coco: {'instances', 'images'}
    test: dict = field(default_factory=dict)
    val_fraction: float = 0.2

    @classmethod
    def from_config(cls, name: str, entry: dict, root: str | None = None) -> "DetectionDatasetSpec":
        if entry["source"] not in SOURCES:
            raise ValueError(f"detection dataset '{name}': unknown source {entry['source']!r}; expected one of "
                             f"{', '.join(SOURCES)}")
        return cls(name=name, source=entry["source"], metric=entry["metric"], root=root or entry.get("root"),
                   train=entry.get("train", {}), test=entry.get("test", {}),
                   val_fraction=entry.get("val_fraction", 0.2))


def read_source(spec: DetectionDatasetSpec, part: str) -> tuple[BoxDataset, Path]:
    """(annotations, image root) of the source's `part`: 'train' (VOC: trainval) or 'test'."""
    if spec.source == "voc2007":
        return read_voc2007_boxes(spec.root, "trainval" if part == "train" else "test"), Path(spec.root)
    if spec.source == "generated":
        root = Path(spec.root)
        return read_coco(root / "annotations" / f"instances_{part}.json", root), root
    files = spec.train if part == "train" else spec.test
    missing = [k for k in ("instances", "images") if k not in files]
    if missing:
        raise ValueError(f"detection dataset '{spec.name}' (source coco): config key '{part}' needs "
                         f"{' and '.join(missing)} (an instances.json and its image folder)")
    return read_coco(files["instances"], files["images"]), Path(files["images"])


@dataclass
class DetectionSplit:
    dataset: str
    classes: list
    ids: dict  # split -> image ids
    exclusions: dict  # part -> {what: count}
    hash: str = ""

    def save(self, path) -> None:
        body = {"dataset": self.dataset, "classes": self.classes, "ids": self.ids, "exclusions": self.exclusions,
                "sizes": {s: len(v) for s, v in self.ids.items()}}
        body["hash"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        write_json(path, body)

    @classmethod
    def load(cls, path) -> "DetectionSplit":
        body = read_json(path)
        return cls(body["dataset"], body["classes"], body["ids"], body["exclusions"], body["hash"])


def make_detection_split(spec: DetectionDatasetSpec, out_json, seed: int) -> DetectionSplit:
    """The split (module docstring) from the source's annotations; both parts must define the same classes."""
    train, _ = read_source(spec, "train")
    test, _ = read_source(spec, "test")
    if train.classes != test.classes:
        raise ValueError(f"detection dataset '{spec.name}': its train and test annotations define different "
                         f"categories ({train.classes[:5]} ... vs {test.classes[:5]} ...); they must be the same")
    ids = [im.image_id for im in train.images]
    rng = np.random.default_rng(derive_seed(seed, "detection_split", spec.name))
    val = set(rng.choice(len(ids), size=max(1, round(spec.val_fraction * len(ids))), replace=False).tolist())
    split = DetectionSplit(spec.name, train.classes,
                           {"train": [i for k, i in enumerate(ids) if k not in val],
                            "val": [i for k, i in enumerate(ids) if k in val],
                            "test": [im.image_id for im in test.images]},
                           {"train": train.exclusions, "test": test.exclusions})
    for part, counts in split.exclusions.items():
        for what, count in counts.items():
            if count:
                log.warning("%s (%s): %d %s", spec.name, part, count, what)
    split.save(out_json)
    log.info("%s: %d train / %d val / %d test images, %d classes", spec.name, len(split.ids["train"]),
             len(split.ids["val"]), len(split.ids["test"]), len(split.classes))
    return DetectionSplit.load(out_json)


class DetectionImages(torch.utils.data.Dataset):
    """Images of some splits with their boxes: item i is (uint8 image (3, H, W), target {'boxes', 'labels',
    'difficult'}). `parts`: a dict shared by the datasets of one job, so each part's annotations are read once."""

    def __init__(self, spec: DetectionDatasetSpec, split: DetectionSplit, names, parts: dict | None = None):
        # train and val are images of the source's training part, test of its test part (their ids may repeat)
        self.images, self.roots = [], []
        parts = {} if parts is None else parts
        for name in names:
            part = "test" if name == "test" else "train"
            if part not in parts:
                data, root = read_source(spec, part)
                parts[part] = {im.image_id: im for im in data.images}, root
            by_id, root = parts[part]
            self.images += [by_id[i] for i in split.ids[name]]
            self.roots += [root] * len(split.ids[name])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        with Image.open(self.roots[i] / image.file) as pil:
            pixels = torch.from_numpy(np.asarray(pil.convert("RGB")).copy()).permute(2, 0, 1)
        return pixels, {"boxes": torch.from_numpy(image.boxes), "labels": torch.from_numpy(image.labels),
                        "difficult": torch.from_numpy(image.difficult)}

    def trainable(self) -> list[int]:
        """Positions of the images with at least one box that is not difficult (what training learns from)."""
        return [i for i, im in enumerate(self.images) if (~im.difficult).any()]
