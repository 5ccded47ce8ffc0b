"""Box annotations of a detection dataset: one model (a BoxDataset of ImageBoxes), readers of the two formats the
study uses (COCO's instances.json, the VOC 2007 devkit's XML) and a writer of COCO's format.

Conventions:
- A box is float32 (x1, y1, x2, y2) in continuous 0-based pixel coordinates: pixel (i, j) covers [i, i + 1) x
  [j, j + 1), so a box's width is x2 - x1 and IoU needs no "+1".
- COCO's bbox [x, y, w, h] becomes [x, y, x + w, y + h].
- VOC's 1-based inclusive pixel box (xmin, ymin, xmax, ymax) becomes (xmin - 1, ymin - 1, xmax, ymax), so its width
  is xmax - xmin + 1, as the VOC devkit counts it.
- Labels are 1..K and label k is classes[k - 1]; 0 is left to the detector's background class. COCO: categories in
  id order (COCO's ids 1..90, with gaps, become 1..80); VOC: the devkit's 20 classes in its (alphabetical) order.
- `difficult` marks boxes that evaluation ignores and training does not learn from: VOC's difficult flag, COCO's
  iscrowd.
- Boxes partly outside their image are clipped to it; boxes with no area inside it are left out; images left with
  no boxes are kept (evaluation counts their false positives, as COCO's does). `exclusions` counts each of these.
- Images keep the order of the file that lists them, boxes the order of their annotations.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferbench.atomic import write_json
from transferbench.data.paper import VOC_CLASSES, VOC_INDEX, MissingDataError, _class_index, _lines, require

CLIPPED = "boxes clipped to the image"
NO_AREA = "boxes without area excluded"
NO_BOXES = "images without boxes"
EXCLUSION_KEYS = (CLIPPED, NO_AREA, NO_BOXES)
VOC_SPLITS = ("train", "val", "trainval", "test")


@dataclass(frozen=True, eq=False)  # eq=False: the fields are arrays, which have no single truth value for ==
class ImageBoxes:
    """One image and its boxes (see the module's conventions)."""

    image_id: str  # COCO: str(image["id"]); VOC: the file stem, e.g. "000005"
    file: str  # path relative to the dataset's image root
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float32, x1 y1 x2 y2
    labels: np.ndarray  # (n,) int64 in 1..K
    difficult: np.ndarray  # (n,) bool

    def __post_init__(self):
        n = len(self.labels)
        if (self.boxes.shape != (n, 4) or self.boxes.dtype != np.float32 or self.labels.shape != (n,)
                or self.labels.dtype != np.int64 or self.difficult.shape != (n,) or self.difficult.dtype != bool):
            raise ValueError(f"image {self.image_id!r}: expected boxes (n, 4) float32, labels (n,) int64 and "
                             f"difficult (n,) bool; got boxes {self.boxes.shape} {self.boxes.dtype}, labels "
                             f"{self.labels.shape} {self.labels.dtype}, difficult {self.difficult.shape} "
                             f"{self.difficult.dtype}")


@dataclass
class BoxDataset:
    """The images of one split with their boxes; `exclusions` says what the reader left out or changed."""

    classes: list[str]  # label k is classes[k - 1]
    images: list[ImageBoxes]
    exclusions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXCLUSION_KEYS, 0))

    @property
    def n_boxes(self) -> int:
        return sum(len(im.labels) for im in self.images)


def _some(values, n: int = 5) -> str:
    """The first `n` of `values` and how many there are in all, for error messages."""
    values = list(values)
    shown = ", ".join(map(str, values[:n]))
    return shown if len(values) <= n else f"{shown}, ... ({len(values)} in all)"


def _image_boxes(image_id, file, width, height, raw, exclusions) -> ImageBoxes:
    """ImageBoxes from raw [(x1, y1, x2, y2, label, difficult)], clipping boxes to the image and counting what
    changed in `exclusions`."""
    boxes = np.array([r[:4] for r in raw], dtype=np.float64).reshape(-1, 4)
    clipped = boxes.copy()
    np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
    np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
    has_area = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    exclusions[NO_AREA] += int((~has_area).sum())
    exclusions[CLIPPED] += int((has_area & (clipped != boxes).any(axis=1)).sum())
    exclusions[NO_BOXES] += int(not has_area.any())
    return ImageBoxes(image_id=str(image_id), file=file, width=int(width), height=int(height),
                      boxes=clipped[has_area].astype(np.float32),
                      labels=np.array([r[4] for r in raw], dtype=np.int64).reshape(-1)[has_area],
                      difficult=np.array([r[5] for r in raw], dtype=bool).reshape(-1)[has_area])


def _missing_images(image_root: Path, files) -> list[str]:
    return [f for f in files if not (image_root / f).is_file()]


def _fields(record, keys, where, what):
    """record[k] for k in keys, or a ValueError naming the file, the record and the missing key."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: {what} is {type(record).__name__}, not an object; not a COCO instances file")
    for key in keys:
        if key not in record:
            raise ValueError(f"{where}: {what} lacks key {key!r} (expected {', '.join(keys)}); "
                             f"not a COCO instances file? it has: {_some(sorted(record))}")
    return [record[k] for k in keys]


def read_coco(instances_json, image_root) -> BoxDataset:
    """A COCO-format instances file (keys images, annotations, categories) whose images' file_name are relative to
    `image_root`. Raises ValueError naming the file for anything that does not fit together."""
    path, image_root = Path(instances_json), Path(image_root)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); expected a COCO instances file") from None
    images, annotations, categories = _fields(data, ("images", "annotations", "categories"), path, "the top level")

    cat_ids = sorted(_fields(c, ("id", "name"), path, "a category")[0] for c in categories)
    if len(set(cat_ids)) != len(cat_ids):
        raise ValueError(f"{path}: category ids repeat: {_some(cat_ids, 20)}")
    names = {c["id"]: c["name"] for c in categories}
    label_of = {cid: k for k, cid in enumerate(cat_ids, start=1)}

    image_rows = [_fields(im, ("id", "file_name", "width", "height"), path, "an image") for im in images]
    boxes_of = {row[0]: [] for row in image_rows}
    if len(boxes_of) != len(image_rows):
        raise ValueError(f"{path}: image ids repeat ({len(image_rows)} images, {len(boxes_of)} distinct ids)")

    unknown_cats, unknown_images = {}, {}
    for ann in annotations:
        image_id, cat_id, bbox = _fields(ann, ("image_id", "category_id", "bbox"), path, "an annotation")
        if cat_id not in label_of:
            unknown_cats[cat_id] = unknown_cats.get(cat_id, 0) + 1
        if image_id not in boxes_of:
            unknown_images[image_id] = unknown_images.get(image_id, 0) + 1
        if unknown_cats or unknown_images:
            continue  # collect every bad reference before raising, so the message is complete
        if len(bbox) != 4:
            raise ValueError(f"{path}: annotation {ann.get('id')!r} has bbox {bbox}; expected [x, y, width, height]")
        x, y, w, h = map(float, bbox)
        boxes_of[image_id].append((x, y, x + w, y + h, label_of[cat_id], bool(ann.get("iscrowd", 0))))
    if unknown_cats:
        raise ValueError(f"{path}: {sum(unknown_cats.values())} annotations have category_id not among the "
                         f"categories: {_some(sorted(unknown_cats, key=str))}; the categories define ids "
                         f"{_some(cat_ids, 20)}")
    if unknown_images:
        raise ValueError(f"{path}: {sum(unknown_images.values())} annotations have image_id not among the images: "
                         f"{_some(sorted(unknown_images, key=str))}")

    missing = _missing_images(image_root, [row[1] for row in image_rows])
    if missing:
        raise ValueError(f"{path}: {len(missing)} of {len(image_rows)} images are not under {image_root}: "
                         f"{_some(missing, 3)}; is the image root right?")

    exclusions = dict.fromkeys(EXCLUSION_KEYS, 0)
    out = [_image_boxes(image_id, Path(file).as_posix(), width, height, boxes_of[image_id], exclusions)
           for image_id, file, width, height in image_rows]
    return BoxDataset(classes=[str(names[c]) for c in cat_ids], images=out, exclusions=exclusions)


def _voc_size(root_element, annotation: Path) -> tuple[int, int]:
    try:
        width, height = (int(float(root_element.findtext(f"size/{k}"))) for k in ("width", "height"))
    except (TypeError, ValueError):
        raise ValueError(f"{annotation}: no usable <size><width>/<height>; "
                         "the VOC devkit's annotations have it") from None
    if width <= 0 or height <= 0:
        raise ValueError(f"{annotation}: <size> is {width} x {height}; expected positive width and height")
    return width, height


def _voc_object(obj, annotation: Path):
    name = (obj.findtext("name") or "").strip()
    label = _class_index(VOC_INDEX, name, annotation) + 1
    try:
        xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (TypeError, ValueError):
        raise ValueError(f"{annotation}: object {name!r} has no usable <bndbox> (xmin, ymin, xmax, ymax)") from None
    hard = (obj.findtext("difficult") or "0").strip() == "1"
    return xmin - 1, ymin - 1, xmax, ymax, label, hard  # 1-based inclusive -> continuous 0-based


def read_voc2007_boxes(root, split: str) -> BoxDataset:
    """The VOC 2007 `split` ('train', 'val', 'trainval' or 'test', the devkit's ImageSets/Main lists) under `root`
    (the data root holding VOCdevkit/VOC2007); files are relative to `root`."""
    if split not in VOC_SPLITS:
        raise ValueError(f"VOC 2007 split {split!r}: expected one of {', '.join(VOC_SPLITS)}")
    root = Path(root)
    base = root / "VOCdevkit" / "VOC2007"
    names = _lines(base / "ImageSets" / "Main" / f"{split}.txt", "voc2007")
    files = [f"VOCdevkit/VOC2007/JPEGImages/{n}.jpg" for n in names]
    missing = _missing_images(root, files)
    if missing:
        raise MissingDataError(f"VOC 2007 {split}: {len(missing)} of {len(files)} listed images are not under "
                               f"{root}: {_some(missing, 3)}")
    exclusions = dict.fromkeys(EXCLUSION_KEYS, 0)
    images = []
    for name, file in zip(names, files):
        annotation = require(base / "Annotations" / f"{name}.xml", "voc2007")
        element = ET.parse(annotation).getroot()
        width, height = _voc_size(element, annotation)
        raw = [_voc_object(obj, annotation) for obj in element.iter("object")]
        images.append(_image_boxes(name, file, width, height, raw, exclusions))
    return BoxDataset(classes=list(VOC_CLASSES), images=images, exclusions=exclusions)


def coco_image_ids(dataset: BoxDataset) -> list[int]:
    """The integer ids write_coco gives the images: the image_ids themselves where all are numeric and distinct as
    integers (COCO's ids, VOC's '000005' -> 5), else 1..N in order (COCO ids must be integers)."""
    ids = [im.image_id for im in dataset.images]
    if all(i.isdigit() for i in ids) and len({int(i) for i in ids}) == len(ids):
        return [int(i) for i in ids]
    return list(range(1, len(ids) + 1))


def write_coco(dataset: BoxDataset, path) -> None:
    """Write `dataset` as a COCO instances file, atomically: category ids 1..K (= labels), bbox [x, y, w, h],
    iscrowd = difficult (so pycocotools ignores those boxes), image ids from coco_image_ids."""
    images, annotations = [], []
    for coco_id, im in zip(coco_image_ids(dataset), dataset.images):
        images.append({"id": coco_id, "file_name": im.file, "width": im.width, "height": im.height})
        for (x1, y1, x2, y2), label, hard in zip(im.boxes.tolist(), im.labels.tolist(), im.difficult.tolist()):
            w, h = x2 - x1, y2 - y1
            # annotation ids from 1: pycocotools' COCOeval takes a matched ground-truth id of 0 for "unmatched"
            annotations.append({"id": len(annotations) + 1, "image_id": coco_id, "category_id": label,
                                "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": int(hard)})
    categories = [{"id": k, "name": name, "supercategory": ""} for k, name in enumerate(dataset.classes, start=1)]
    write_json(path, {"info": {"description": "written by transferbench.detection.annotations.write_coco"},
                      "licenses": [], "images": images, "annotations": annotations, "categories": categories})
