import contextlib
import io
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from transferbench.detection import metrics

pytestmark = pytest.mark.unit

# The worked example: 2 boxes of class 1, detections TP, FP, TP in score order -> precision 1, 1/2, 2/3 at recall
# 1/2, 1/2, 1. 11-point AP: recall points 0..0.5 (6 of them) have max precision 1, points 0.6..1 (5) have 2/3.
WORKED_AP = (6 * 1.0 + 5 * (2 / 3)) / 11
GT_A, GT_B = [0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 70.0, 70.0]
FAR = [200.0, 200.0, 210.0, 210.0]  # overlaps nothing


def _dets(boxes, scores, labels):
    return {"boxes": np.array(boxes, dtype=float).reshape(-1, 4), "scores": np.array(scores, dtype=float),
            "labels": np.array(labels, dtype=np.int64)}


def _gt(boxes, labels, difficult=None):
    difficult = [False] * len(labels) if difficult is None else difficult
    return {"boxes": np.array(boxes, dtype=float).reshape(-1, 4), "labels": np.array(labels, dtype=np.int64),
            "difficult": np.array(difficult, dtype=bool)}


def _sizes(n):
    return [(300, 300)] * n


def _worked_example(extra_boxes=(), extra_scores=()):
    dets = _dets([GT_A, FAR, GT_B, *extra_boxes], [0.9, 0.8, 0.7, *extra_scores], [1] * (3 + len(extra_boxes)))
    return [dets], [_gt([GT_A, GT_B], [1, 1])]


def test_perfect_detections_score_one():
    gts = [_gt([GT_A, GT_B], [1, 2]), _gt([GT_B], [2]), _gt([], [])]
    dets = [_dets(gt["boxes"], np.linspace(0.9, 0.5, len(gt["labels"])), gt["labels"]) for gt in gts]
    voc = metrics.voc07_map(dets, gts, num_classes=2)
    assert voc["map"] == 1.0 and voc["ap_per_class"] == [1.0, 1.0]
    coco = metrics.coco_ap(dets, gts, _sizes(3), num_classes=2)
    assert coco == pytest.approx({"ap": 1.0, "ap50": 1.0, "ap75": 1.0})


def test_voc_11point_ap_hand_computed_tp_fp_tp():
    dets, gts = _worked_example()
    result = metrics.voc07_map(dets, gts, num_classes=1)
    assert result["ap_per_class"][0] == pytest.approx(WORKED_AP, abs=1e-6)
    assert result["map"] == pytest.approx(WORKED_AP, abs=1e-6)


def test_detection_on_difficult_box_is_neither_tp_nor_fp():
    hard = [100.0, 100.0, 120.0, 120.0]
    dets, gts = _worked_example(extra_boxes=[hard], extra_scores=[0.95])  # ranked first: as an FP it would cost AP
    gts = [_gt([GT_A, GT_B, hard], [1, 1, 1], difficult=[False, False, True])]
    assert metrics.voc07_map(dets, gts, 1)["map"] == pytest.approx(WORKED_AP, abs=1e-6)
    # COCOeval ignores it too (a crowd region), so its AP50 equals the one without the difficult box and detection.
    assert metrics.coco_ap(dets, gts, _sizes(1), 1)["ap50"] == pytest.approx(
        metrics.coco_ap(*_worked_example(), _sizes(1), 1)["ap50"])


def test_difficult_boxes_do_not_count_as_positives():
    # One normal box found, one difficult box missed: recall is 1/1, not 1/2.
    gts = [_gt([GT_A, GT_B], [1, 1], difficult=[False, True])]
    dets = [_dets([GT_A], [0.9], [1])]
    assert metrics.voc07_map(dets, gts, 1)["map"] == 1.0
    assert metrics.coco_ap(dets, gts, _sizes(1), 1)["ap"] == pytest.approx(1.0)


def test_second_detection_on_matched_box_is_false_positive():
    # A duplicate of GT_A in the FP's place gives the worked example's TP, FP, TP.
    dets = [_dets([GT_A, [0.5, 0.0, 10.5, 10.0], GT_B], [0.9, 0.8, 0.7], [1, 1, 1])]
    gts = [_gt([GT_A, GT_B], [1, 1])]
    assert metrics.voc07_map(dets, gts, 1)["map"] == pytest.approx(WORKED_AP, abs=1e-6)


def test_voc_tries_only_the_best_overlapping_box():
    # Two overlapping boxes; the second detection overlaps the taken box A most (IoU 96/104) and B well (94/106).
    # The devkit calls it a duplicate of A (FP); COCOeval matches it to the free box B instead.
    box_a, box_b = [0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]
    dets = [_dets([box_a, [0.4, 0.0, 10.4, 10.0]], [0.9, 0.8], [1, 1])]
    gts = [_gt([box_a, box_b], [1, 1])]
    assert metrics.voc07_map(dets, gts, 1)["map"] == pytest.approx(6 / 11, abs=1e-6)  # recall stops at 1/2
    assert metrics.coco_ap(dets, gts, _sizes(1), 1)["ap50"] == pytest.approx(1.0)


def test_iou_exactly_at_threshold_is_not_a_match():
    # IoU of the left half of a 10 x 10 box with the box: 50 / 100 = 0.5 exactly in floating point.
    dets, gts = [_dets([[0.0, 0.0, 5.0, 10.0]], [0.9], [1])], [_gt([GT_A], [1])]
    assert metrics.voc07_map(dets, gts, 1, iou_threshold=0.5)["map"] == 0.0  # the devkit's ovmax > ovthresh
    assert metrics.voc07_map(dets, gts, 1, iou_threshold=0.49)["map"] == 1.0
    # COCOeval matches at IoU >= threshold: the box counts at 0.5 only, one of its ten thresholds.
    coco = metrics.coco_ap(dets, gts, _sizes(1), 1)
    assert coco["ap50"] == pytest.approx(1.0) and coco["ap"] == pytest.approx(0.1)


def test_class_without_ground_truth_is_nan_and_left_out_of_mean():
    # Class 1: found. Class 2: only a false detection, no boxes. Class 3: only a difficult box.
    dets = [_dets([GT_A, GT_B], [0.9, 0.8], [1, 2])]
    gts = [_gt([GT_A, FAR], [1, 3], difficult=[False, True])]
    result = metrics.voc07_map(dets, gts, num_classes=3)
    assert result["ap_per_class"][0] == 1.0
    assert math.isnan(result["ap_per_class"][1]) and math.isnan(result["ap_per_class"][2])
    assert result["map"] == 1.0
    assert metrics.coco_ap(dets, gts, _sizes(1), 3)["ap"] == pytest.approx(1.0)


def test_no_class_with_ground_truth_gives_nan():
    dets, gts = [_dets([GT_A], [0.9], [1])], [_gt([], [])]
    assert math.isnan(metrics.voc07_map(dets, gts, 1)["map"])
    assert all(math.isnan(value) for value in metrics.coco_ap(dets, gts, _sizes(1), 1).values())


def test_coco_ap75_below_ap50_for_shifted_boxes():
    # Shifted by 20 of 100 pixels: IoU 8000 / 12000 = 0.667, a match at thresholds 0.5 .. 0.65 (4 of 10).
    gts = [_gt([[0.0, 0.0, 100.0, 100.0]], [1])]
    dets = [_dets([[20.0, 0.0, 120.0, 100.0]], [0.9], [1])]
    coco = metrics.coco_ap(dets, gts, _sizes(1), 1)
    assert coco["ap50"] == pytest.approx(1.0) and coco["ap75"] == 0.0 and coco["ap"] == pytest.approx(0.4)
    assert coco["ap75"] < coco["ap50"]


def test_no_detections_score_zero():
    dets = [_dets([], [], []), _dets([], [], [])]
    gts = [_gt([GT_A, GT_B], [1, 2]), _gt([], [])]
    voc = metrics.voc07_map(dets, gts, num_classes=2)
    assert voc == {"map": 0.0, "ap_per_class": [0.0, 0.0]}
    assert metrics.coco_ap(dets, gts, _sizes(2), num_classes=2) == {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    # Plain empty lists, as a detector with no output might give, are read the same way.
    empty = [{"boxes": [], "scores": [], "labels": []}] * 2
    assert metrics.voc07_map(empty, gts, num_classes=2) == voc


def test_detection_in_image_without_ground_truth_is_false_positive():
    # Image 1 has no boxes; its detection ranks first: FP, TP -> precision 1/2 at recall 1.
    dets = [_dets([GT_A], [0.8], [1]), _dets([GT_A], [0.9], [1])]
    gts = [_gt([GT_A], [1]), _gt([], [])]
    assert metrics.voc07_map(dets, gts, 1)["map"] == pytest.approx(0.5)
    assert metrics.coco_ap(dets, gts, _sizes(2), 1)["ap50"] == pytest.approx(0.5)


def _random_separated_case(seed, num_images=12, num_classes=3):
    """Boxes in 100-pixel grid cells that only overlap within a cell: no detection overlaps two ground-truth boxes."""
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for _ in range(num_images):
        det_boxes, det_labels, gt_boxes, gt_labels = [], [], [], []
        for row in range(4):
            for col in range(4):
                origin = np.array([col * 100.0, row * 100.0] * 2)
                kind = rng.random()
                if kind < 0.6:  # a box, found 0-2 times with jitter (some IoUs below 0.5), sometimes as another class
                    box = origin + np.concatenate([rng.uniform(20, 35, 2), rng.uniform(55, 80, 2)])
                    label = int(rng.integers(1, num_classes + 1))
                    gt_boxes.append(box)
                    gt_labels.append(label)
                    for _ in range(rng.choice(3, p=[0.2, 0.6, 0.2])):
                        det_boxes.append(box + rng.uniform(-12, 12, 4))
                        det_labels.append(label if rng.random() < 0.85 else int(rng.integers(1, num_classes + 1)))
                elif kind < 0.8:  # a detection on background
                    det_boxes.append(origin + np.concatenate([rng.uniform(20, 35, 2), rng.uniform(55, 80, 2)]))
                    det_labels.append(int(rng.integers(1, num_classes + 1)))
        dets.append(_dets(det_boxes, rng.random(len(det_boxes)), det_labels))
        gts.append(_gt(gt_boxes, gt_labels))
    return dets, gts


def _cocoeval_11point_ap50(dets, gts, num_classes):
    """Per-class AP from COCOeval with IoU threshold 0.5 and recall points 0, 0.1, ..., 1 (NaN: no boxes)."""
    def xywh(box):
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    images = [{"id": i + 1, "height": 400, "width": 400} for i in range(len(gts))]
    annotations, next_id = [], 1  # ids from 1: COCOeval reads a matched id of 0 as "unmatched"
    for i, gt in enumerate(gts):
        for box, label in zip(gt["boxes"], gt["labels"]):
            annotations.append({"id": next_id, "image_id": i + 1, "category_id": int(label), "bbox": xywh(box),
                                "area": xywh(box)[2] * xywh(box)[3], "iscrowd": 0})
            next_id += 1
    results = [{"image_id": i + 1, "category_id": int(label), "bbox": xywh(box), "score": float(score)}
               for i, det in enumerate(dets) for box, label, score in zip(det["boxes"], det["labels"], det["scores"])]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations,
                           "categories": [{"id": k} for k in range(1, num_classes + 1)]}
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.recThrs = np.linspace(0.0, 1.0, 11)
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, -1]  # (recall points, classes), all areas, 100 detections
    return [float(p.mean()) if (p >= 0).all() else math.nan for p in precision.T]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voc_11point_ap_equals_cocoeval_where_protocols_coincide(seed):
    # Without difficult boxes and without a detection overlapping two boxes, the devkit and COCOeval count the same
    # TPs and FPs; with 11 recall points at IoU 0.5 they then give the same AP (up to an IoU of exactly 0.5, which
    # random boxes do not hit).
    dets, gts = _random_separated_case(seed)
    voc = metrics.voc07_map(dets, gts, num_classes=3)["ap_per_class"]
    coco = _cocoeval_11point_ap50(dets, gts, num_classes=3)
    assert not any(math.isnan(ap) for ap in voc)
    assert 0.1 < min(voc) and max(voc) < 0.95  # a case with misses and false positives, not a trivial one
    np.testing.assert_allclose(voc, coco, atol=1e-6)


def test_detection_scores_gives_the_metric_columns():
    dets, gts = _worked_example()
    for metric in metrics.DETECTION_METRICS:
        scores = metrics.detection_scores(dets, gts, _sizes(1), 1, metric)
        assert tuple(scores) == metrics.METRIC_COLUMNS[metric]
    assert metrics.detection_scores(dets, gts, _sizes(1), 1, "voc07_map50")["voc07_map50"] == pytest.approx(WORKED_AP)
    with pytest.raises(ValueError, match="voc07_map50, coco_ap"):
        metrics.detection_scores(dets, gts, _sizes(1), 1, "map50")


@pytest.mark.parametrize(
    ("dets", "gts", "message"),
    [
        ([_dets([GT_A], [0.9], [1])], [_gt([GT_A], [1])] * 2, "1 detection entries but 2 ground-truth"),
        ([_dets([GT_A], [0.9], [1])] * 2, [_gt([GT_A], [1]), _gt([GT_A], [0])], "image 1: ground-truth label 0"),
        ([_dets([GT_A], [0.9], [1]), _dets([GT_A], [0.9], [3])], [_gt([GT_A], [1])] * 2, "image 1: .*label 3.*1..2"),
        ([{"boxes": np.zeros((1, 5)), "scores": [0.9], "labels": [1]}], [_gt([GT_A], [1])],
         r"image 0: detection boxes have shape \(1, 5\)"),
        ([_dets([GT_A], [0.9, 0.8], [1])], [_gt([GT_A], [1])], "image 0: 2 detection scores for 1 boxes"),
        ([_dets([[5.0, 5.0, 2.0, 2.0]], [0.9], [1])], [_gt([GT_A], [1])], "image 0: detection box 0 .* x2 < x1"),
        ([_dets([GT_A], [0.9], [1])], [{"boxes": [GT_A], "labels": [1.0]}], "image 0: .*dtype float64"),
        ([_dets([GT_A], [0.9], [1])], [{"boxes": [GT_A]}], "image 0: ground-truth entry lacks 'labels'"),
        ([_dets([GT_A], [0.9], [1])], [_gt([GT_A], [1], difficult=[True, False])], "image 0: .*difficult"),
    ],
)
def test_bad_input_names_the_image_and_the_problem(dets, gts, message):
    with pytest.raises(ValueError, match=message):
        metrics.voc07_map(dets, gts, num_classes=2)
    with pytest.raises(ValueError, match=message):
        metrics.coco_ap(dets, gts, _sizes(len(gts)), num_classes=2)


def test_coco_needs_one_size_per_image():
    dets, gts = _worked_example()
    with pytest.raises(ValueError, match="2 image sizes for 1 images"):
        metrics.coco_ap(dets, gts, _sizes(2), 1)
