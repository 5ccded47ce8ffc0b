"""Detection metrics: PASCAL VOC 2007 mAP@0.5 (11-point) and COCO AP@[.5:.95], AP50, AP75.

Conventions. Inputs are plain numpy (anything `np.asarray` takes), one entry per evaluated image, in the same order
in `detections` and `ground_truth`:

- `detections[i]`: {"boxes": (n, 4) float, "scores": (n,) float, "labels": (n,) int in 1..K}
- `ground_truth[i]`: {"boxes": (m, 4) float, "labels": (m,) int in 1..K, "difficult": (m,) bool}; "difficult" may be
  left out (no difficult objects, as in COCO)
- `image_sizes[i]`: (height, width) in pixels (only the COCO metric takes it, for its image records)

Labels are 1..K with 0 left for the background, as in torchvision's detectors. Boxes are x1, y1, x2, y2 in continuous,
0-based pixel coordinates, and IoU is area-based with no "+1". VOC annotation boxes are 1-based and inclusive; the
dataset code converts them to (xmin - 1, ymin - 1, xmax, ymax), whose plain width xmax - xmin + 1 is the devkit's, so
the IoU here equals the devkit's IoU on the original boxes. Values are fractions in [0, 1]; a class with no
(non-difficult) ground truth has AP NaN and is left out of the mean.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

DETECTION_METRICS = ("voc07_map50", "coco_ap")
METRIC_COLUMNS = {"voc07_map50": ("voc07_map50",), "coco_ap": ("coco_ap", "coco_ap50", "coco_ap75")}

# The devkit's recall thresholds np.arange(0.0, 1.1, 0.1) hold the same floats as this (0.30000000000000004 etc.),
# so a recall of exactly 3/10 does not reach the "0.3" point in either.
_ELEVEN_RECALLS = np.linspace(0.0, 1.0, 11)


def _array(value, dtype, image: int, what: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"image {image}: {what} cannot be read as a {np.dtype(dtype).name} array ({error})") from error


def _boxes(entry: dict, image: int, what: str) -> np.ndarray:
    boxes = _array(entry["boxes"], np.float64, image, f"{what} boxes")
    if boxes.size == 0:
        return boxes.reshape(0, 4)  # an empty list arrives as shape (0,)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"image {image}: {what} boxes have shape {boxes.shape}; expected (n, 4) as x1, y1, x2, y2")
    if not np.isfinite(boxes).all():
        raise ValueError(f"image {image}: {what} boxes contain NaN or inf")
    inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if inverted.any():
        row = int(np.flatnonzero(inverted)[0])
        raise ValueError(f"image {image}: {what} box {row} is {boxes[row].tolist()}, with x2 < x1 or y2 < y1; "
                         "boxes must be x1, y1, x2, y2 (not x, y, width, height)")
    return boxes


def _labels(entry: dict, image: int, what: str, count: int, num_classes: int) -> np.ndarray:
    labels = np.asarray(entry["labels"])
    if labels.size == 0:
        labels = labels.astype(np.int64).reshape(0)
    if labels.shape != (count,):
        raise ValueError(f"image {image}: {what} labels have shape {labels.shape}; expected ({count},), one per box")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"image {image}: {what} labels have dtype {labels.dtype}; expected integer class ids")
    outside = (labels < 1) | (labels > num_classes)
    if outside.any():
        raise ValueError(f"image {image}: {what} label {labels[outside][0]} is out of range; labels must be class ids "
                         f"1..{num_classes} (0 is the background)")
    return labels.astype(np.int64)


def _validated(detections, ground_truth, num_classes: int) -> tuple[list[dict], list[dict]]:
    """Both lists as dicts of numpy arrays of the documented shapes and dtypes, or a ValueError naming the image."""
    if not (isinstance(num_classes, (int, np.integer)) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive integer (K, without the background), got {num_classes!r}")
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection entries but {len(ground_truth)} ground-truth entries; "
                         "give one of each per evaluated image, in the same order")
    dets, gts = [], []
    for image, (det, gt) in enumerate(zip(detections, ground_truth)):
        required = ((det, "detection", ("boxes", "scores", "labels")), (gt, "ground-truth", ("boxes", "labels")))
        for entry, what, keys in required:
            missing = [key for key in keys if key not in entry]
            if missing:
                raise ValueError(f"image {image}: {what} entry lacks {', '.join(map(repr, missing))}; "
                                 f"expected keys {', '.join(map(repr, keys))}")
        boxes = _boxes(det, image, "detection")
        scores = _array(det["scores"], np.float64, image, "detection scores").reshape(-1)
        if len(scores) != len(boxes) or not np.isfinite(scores).all():
            raise ValueError(f"image {image}: {len(scores)} detection scores for {len(boxes)} boxes; "
                             "expected one finite score per box")
        dets.append({"boxes": boxes, "scores": scores,
                     "labels": _labels(det, image, "detection", len(boxes), num_classes)})
        gt_boxes = _boxes(gt, image, "ground-truth")
        difficult = np.asarray(gt.get("difficult", np.zeros(len(gt_boxes), dtype=bool)))
        if difficult.shape != (len(gt_boxes),):
            raise ValueError(f"image {image}: ground-truth difficult flags have shape {difficult.shape}; "
                             f"expected ({len(gt_boxes)},), one per box")
        gts.append({"boxes": gt_boxes, "labels": _labels(gt, image, "ground-truth", len(gt_boxes), num_classes),
                    "difficult": difficult.astype(bool)})
    return dets, gts


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box with each row of `boxes` (continuous coordinates: no "+1", see the module docstring)."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0.0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0.0, None)
    intersection = width * height
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return intersection / (union - intersection)


def _class_ap(dets: list[dict], gts: list[dict], label: int, iou_threshold: float) -> float:
    """One class's 11-point AP, step by step as py-faster-rcnn's voc_eval.py (the devkit's VOCevaldet.m)."""
    gt_boxes = [gt["boxes"][gt["labels"] == label] for gt in gts]
    gt_difficult = [gt["difficult"][gt["labels"] == label] for gt in gts]
    matched = [np.zeros(len(boxes), dtype=bool) for boxes in gt_boxes]
    npos = sum(int((~difficult).sum()) for difficult in gt_difficult)
    if npos == 0:
        return math.nan  # the devkit would divide by zero here; such a class has no AP

    images = np.concatenate([np.full(int((det["labels"] == label).sum()), i) for i, det in enumerate(dets)])
    boxes = np.concatenate([det["boxes"][det["labels"] == label] for det in dets])
    scores = np.concatenate([det["scores"][det["labels"] == label] for det in dets])
    order = np.argsort(-scores, kind="stable")  # stable: equal scores keep image order, so results are reproducible
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, d in enumerate(order):
        image = images[d]
        overlaps = _iou(boxes[d], gt_boxes[image]) if len(gt_boxes[image]) else np.empty(0)
        if overlaps.size and overlaps.max() > iou_threshold:  # strictly greater, as the devkit's ovmax > ovthresh
            best = int(overlaps.argmax())  # only the best-overlapping gt is tried, even if it is taken already
            if gt_difficult[image][best]:
                continue  # a hit on a difficult object counts neither way
            if matched[image][best]:
                fp[rank] = 1  # a duplicate detection
            else:
                tp[rank], matched[image][best] = 1, True
        else:
            fp[rank] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)  # ignored detections first: 0 / 0 -> 0
    points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in _ELEVEN_RECALLS]
    return float(np.mean(points))


def voc07_map(detections, ground_truth, num_classes: int, iou_threshold: float = 0.5) -> dict:
    """PASCAL VOC 2007 detection mAP: {"map": mean AP, "ap_per_class": [AP of class 1, ..., AP of class K]}.

    The protocol of the official devkit (VOCevaldet.m, ported as py-faster-rcnn's voc_eval.py). Per class, all its
    detections over all images are sorted by descending score (stable). Each is compared with the ground-truth box of
    its class in its image that it overlaps most; if that IoU is strictly greater than `iou_threshold` the detection
    is ignored when the box is difficult, a true positive when the box is not matched yet, and a false positive (a
    duplicate) when it is; with no such box it is a false positive. Difficult boxes do not count as positives. The AP
    is the mean over recall t in {0, 0.1, ..., 1} of the maximum precision at recall >= t (0 where none). The mean is
    over the classes with at least one non-difficult ground-truth box; the others have AP NaN.

    Written by hand because no maintained library implements this protocol: pycocotools and torchmetrics interpolate
    at 101 points and have no difficult-object rule (pycocotools' crowd regions, the closest thing, use IoU over the
    detection's area and absorb any number of detections), and they match a detection to the best *unmatched* box at
    IoU >= the threshold. `tests/unit/test_detection_metrics.py` checks that it equals COCOeval where the two coincide.
    """
    dets, gts = _validated(detections, ground_truth, num_classes)
    ap_per_class = [_class_ap(dets, gts, label, iou_threshold) for label in range(1, num_classes + 1)]
    present = [ap for ap in ap_per_class if not math.isnan(ap)]
    return {"map": float(np.mean(present)) if present else math.nan, "ap_per_class": ap_per_class}


def _coco(images: list[dict], annotations: list[dict], num_classes: int) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": k, "name": str(k)} for k in range(1, num_classes + 1)]}
    coco.createIndex()
    return coco


def _xywh(box: np.ndarray) -> list[float]:
    return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]


def coco_ap(detections, ground_truth, image_sizes, num_classes: int) -> dict:
    """COCO bbox AP: {"ap": AP@[.5:.95], "ap50": AP@.5, "ap75": AP@.75}, from pycocotools' COCOeval.

    The COCO protocol as COCOeval implements it: 101-point interpolation, at most 100 detections per image, all object
    areas. Difficult VOC boxes become crowd regions (iscrowd=1), which COCOeval neither requires nor penalises
    detections on. Values are NaN where no class has non-difficult ground truth (COCOeval's -1).
    """
    dets, gts = _validated(detections, ground_truth, num_classes)
    if len(image_sizes) != len(gts):
        raise ValueError(f"{len(image_sizes)} image sizes for {len(gts)} images; give one (height, width) per image")
    images = []
    for image, size in enumerate(image_sizes):
        size = np.asarray(size, dtype=np.float64).reshape(-1)
        if size.shape != (2,) or not (size > 0).all():
            raise ValueError(f"image {image}: size {size.tolist()} is not a positive (height, width) pair")
        images.append({"id": image + 1, "height": int(size[0]), "width": int(size[1])})
    # Annotation ids start at 1: COCOeval stores the matched id per box and reads 0 as "unmatched".
    truth, results = [], []
    for image, (det, gt) in enumerate(zip(dets, gts)):
        for box, label, difficult in zip(gt["boxes"], gt["labels"], gt["difficult"]):
            xywh = _xywh(box)
            truth.append({"id": len(truth) + 1, "image_id": image + 1, "category_id": int(label), "bbox": xywh,
                          "area": xywh[2] * xywh[3], "iscrowd": int(difficult)})
        for box, label, score in zip(det["boxes"], det["labels"], det["scores"]):
            xywh = _xywh(box)
            results.append({"id": len(results) + 1, "image_id": image + 1, "category_id": int(label), "bbox": xywh,
                            "score": float(score), "area": xywh[2] * xywh[3], "iscrowd": 0})
    # pycocotools prints progress on stdout; keep it out of the rule's log.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _coco(images, truth, num_classes)
        # Results are indexed as COCO.loadRes would (ids from 1, area = w * h) but built directly, because loadRes
        # fails on an empty list; with no detections COCOeval then gives the right AP, 0 for each class with truth.
        coco_dt = _coco(images, results, num_classes)
        evaluation = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    ap, ap50, ap75 = (float(value) if value >= 0 else math.nan for value in evaluation.stats[:3])
    return {"ap": ap, "ap50": ap50, "ap75": ap75}


def detection_scores(detections, ground_truth, image_sizes, num_classes: int, metric: str) -> dict[str, float]:
    """Score detections by `metric`, as the columns METRIC_COLUMNS[metric] of the results table."""
    if metric == "voc07_map50":
        return {"voc07_map50": voc07_map(detections, ground_truth, num_classes, iou_threshold=0.5)["map"]}
    if metric == "coco_ap":
        scores = coco_ap(detections, ground_truth, image_sizes, num_classes)
        return {"coco_ap": scores["ap"], "coco_ap50": scores["ap50"], "coco_ap75": scores["ap75"]}
    raise ValueError(f"unknown detection metric {metric!r}: expected one of {', '.join(DETECTION_METRICS)}")
