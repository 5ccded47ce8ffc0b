"""Detection data on real on-disk layouts: the generated shapes dataset read back through the COCO reader, the COCO
reader's label mapping, box conversion, clipping and errors, and the VOC 2007 reader on a devkit tree with
annotation XML (1-based boxes, difficult flags, split lists)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from transferbench.data.paper import VOC_CLASSES
from transferbench.detection.annotations import (
    CLIPPED,
    NO_AREA,
    NO_BOXES,
    BoxDataset,
    ImageBoxes,
    read_coco,
    read_voc2007_boxes,
    write_coco,
)
from transferbench.detection.shapes import write_shapes_detection

pytestmark = pytest.mark.unit

SMALL = {"train_images": 12, "test_images": 5}


def png(path, width=40, height=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, dtype=np.uint8)).save(path)


# --- the generated shapes dataset ---------------------------------------------------------------------------------

def test_shapes_dataset_reads_back_through_the_coco_reader(tmp_path):
    root = tmp_path / "shapes"
    summary = write_shapes_detection(root, **SMALL, seed=3)
    for split, n_images in (("train", 12), ("test", 5)):
        dataset = read_coco(root / "annotations" / f"instances_{split}.json", root)
        assert dataset.classes == ["square", "disc", "triangle"]
        assert len(dataset.images) == n_images == summary[split]["images"]
        assert dataset.n_boxes == summary[split]["boxes"]
        assert dataset.exclusions == {CLIPPED: 0, NO_AREA: 0, NO_BOXES: 0}
        for image in dataset.images:
            assert 1 <= len(image.labels) <= 3
            assert set(image.labels.tolist()) <= {1, 2, 3}
            assert (image.boxes[:, :2] >= 0).all() and (image.boxes[:, 2:] <= 64).all()
            sides = image.boxes[:, 2:] - image.boxes[:, :2]
            assert (sides > 0).all() and (sides <= 28).all()
            assert not image.difficult.any()


def test_shapes_are_inside_their_boxes_and_not_outside(tmp_path):
    """The background is dark (at most 0.45 before noise) and every palette colour has a bright channel, so a box
    holding its shape has many bright pixels and the image outside all boxes almost none."""
    root = tmp_path / "shapes"
    write_shapes_detection(root, **SMALL)
    dataset = read_coco(root / "annotations" / "instances_train.json", root)
    for image in dataset.images:
        bright = np.asarray(Image.open(root / image.file)).max(axis=2) > 150
        outside = np.ones_like(bright)
        for x1, y1, x2, y2 in image.boxes.astype(int):
            assert bright[y1:y2, x1:x2].mean() > 0.15, image.file
            outside[y1:y2, x1:x2] = False
        assert bright[outside].mean() < 0.05, image.file


def test_shapes_boxes_are_tight(tmp_path):
    """Each box's edge rows and columns hold shape pixels: a box one pixel smaller on any side would cut the shape."""
    root = tmp_path / "shapes"
    write_shapes_detection(root, **SMALL)
    dataset = read_coco(root / "annotations" / "instances_train.json", root)
    for image in dataset.images:
        bright = np.asarray(Image.open(root / image.file)).max(axis=2) > 150
        for x1, y1, x2, y2 in image.boxes.astype(int):
            inside = bright[y1:y2, x1:x2]
            edges = [inside[0], inside[-1], inside[:, 0], inside[:, -1]]
            assert all(edge.any() for edge in edges), (image.file, (x1, y1, x2, y2))


def test_shapes_same_seed_writes_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_shapes_detection(a, **SMALL, seed=1)
    write_shapes_detection(b, **SMALL, seed=1)
    write_shapes_detection(c, **SMALL, seed=2)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files) == 12 + 5 + 2
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "annotations" / "instances_train.json").read_bytes() != (c / "annotations" /
                                                                          "instances_train.json").read_bytes()


def test_shapes_refuses_to_write_over_a_nonempty_folder(tmp_path):
    (tmp_path / "shapes").mkdir()
    (tmp_path / "shapes" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        write_shapes_detection(tmp_path / "shapes", **SMALL)


# --- the COCO reader ----------------------------------------------------------------------------------------------

def coco_file(tmp_path, images, annotations, categories, write_images=True):
    """An instances.json under tmp_path/annotations and (unless told not to) its images under tmp_path."""
    for image in images if write_images else []:
        png(tmp_path / image["file_name"], image["width"], image["height"])
    path = tmp_path / "annotations" / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


IMAGES = [{"id": 42, "file_name": "img/a.png", "width": 40, "height": 30},
          {"id": 7, "file_name": "img/b.png", "width": 40, "height": 30}]
CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]


def ann(image_id, category_id, bbox, **extra):
    return {"id": len(bbox) * 1000 + category_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            **extra}


def test_coco_noncontiguous_category_ids_map_to_1_to_k_in_id_order(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 90, [1, 2, 3, 4]), ann(42, 1, [1, 2, 3, 4]), ann(42, 18, [0, 0, 5, 5])],
                     CATEGORIES)
    dataset = read_coco(path, tmp_path)
    assert dataset.classes == ["person", "dog", "toothbrush"]
    assert dataset.images[0].labels.tolist() == [3, 1, 2]
    assert dataset.images[0].labels.dtype == np.int64


def test_coco_xywh_becomes_x1y1x2y2_in_json_order(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(7, 1, [2.5, 3, 10, 4]), ann(42, 18, [0, 0, 40, 30])], CATEGORIES)
    dataset = read_coco(path, tmp_path)
    assert [im.image_id for im in dataset.images] == ["42", "7"]
    assert [im.file for im in dataset.images] == ["img/a.png", "img/b.png"]
    assert (dataset.images[0].width, dataset.images[0].height) == (40, 30)
    np.testing.assert_array_equal(dataset.images[1].boxes, [[2.5, 3, 12.5, 7]])
    np.testing.assert_array_equal(dataset.images[0].boxes, [[0, 0, 40, 30]])
    assert dataset.images[1].boxes.dtype == np.float32
    assert dataset.exclusions == {CLIPPED: 0, NO_AREA: 0, NO_BOXES: 0}


def test_coco_box_partly_outside_is_clipped_and_counted(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 1, [-3, 20, 10, 20]), ann(7, 1, [1, 1, 5, 5])], CATEGORIES)
    dataset = read_coco(path, tmp_path)
    np.testing.assert_array_equal(dataset.images[0].boxes, [[0, 20, 7, 30]])
    assert dataset.exclusions[CLIPPED] == 1 and dataset.exclusions[NO_AREA] == 0


def test_coco_box_without_area_in_the_image_is_excluded_and_counted(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 1, [50, 5, 10, 10]), ann(42, 18, [3, 3, 0, 5]),
                                        ann(42, 90, [1, 1, 5, 5]), ann(7, 1, [1, 1, 5, 5])], CATEGORIES)
    dataset = read_coco(path, tmp_path)
    assert dataset.images[0].labels.tolist() == [3]
    np.testing.assert_array_equal(dataset.images[0].boxes, [[1, 1, 6, 6]])
    assert dataset.exclusions == {CLIPPED: 0, NO_AREA: 2, NO_BOXES: 0}


def test_coco_images_without_boxes_are_kept_and_counted(tmp_path):
    path = coco_file(tmp_path, IMAGES + [{"id": 8, "file_name": "img/c.png", "width": 10, "height": 10}],
                     [ann(42, 1, [1, 1, 5, 5]), ann(8, 1, [20, 20, 5, 5])], CATEGORIES)
    dataset = read_coco(path, tmp_path)
    assert [len(im.labels) for im in dataset.images] == [1, 0, 0]
    empty = dataset.images[1]
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,) and empty.difficult.shape == (0,)
    assert dataset.exclusions == {CLIPPED: 0, NO_AREA: 1, NO_BOXES: 2}


def test_coco_iscrowd_becomes_difficult(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 1, [1, 1, 5, 5], iscrowd=1), ann(42, 1, [2, 2, 5, 5], iscrowd=0),
                                        ann(42, 1, [3, 3, 5, 5])], CATEGORIES)
    assert read_coco(path, tmp_path).images[0].difficult.tolist() == [True, False, False]


def test_coco_unknown_category_id_is_named(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 1, [1, 1, 5, 5]), ann(42, 77, [1, 1, 5, 5]), ann(7, 77, [1, 1, 5, 5])],
                     CATEGORIES)
    with pytest.raises(ValueError, match=r"2 annotations have category_id .*: 77; .* ids 1, 18, 90") as e:
        read_coco(path, tmp_path)
    assert str(path) in str(e.value)


def test_coco_unknown_image_id_is_named(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 1, [1, 1, 5, 5]), ann(1234, 1, [1, 1, 5, 5])], CATEGORIES)
    with pytest.raises(ValueError, match=r"1 annotations have image_id not among the images: 1234"):
        read_coco(path, tmp_path)


def test_coco_missing_image_file_is_named(tmp_path):
    path = coco_file(tmp_path, IMAGES, [ann(42, 1, [1, 1, 5, 5])], CATEGORIES)
    (tmp_path / "img" / "b.png").unlink()
    with pytest.raises(ValueError, match=r"1 of 2 images are not under .*: img/b\.png"):
        read_coco(path, tmp_path)


def test_coco_missing_key_is_named(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match=r"instances\.json: the top level lacks key 'categories'"):
        read_coco(path, tmp_path)
    path = coco_file(tmp_path, IMAGES, [{"image_id": 42, "category_id": 1}], CATEGORIES)
    with pytest.raises(ValueError, match=r"an annotation lacks key 'bbox'"):
        read_coco(path, tmp_path)


def test_write_coco_round_trips_and_pycocotools_reads_it(tmp_path):
    from pycocotools.coco import COCO

    path = coco_file(tmp_path, IMAGES, [ann(42, 90, [1, 2, 3, 4], iscrowd=1), ann(7, 18, [0, 0, 40, 30])], CATEGORIES)
    dataset = read_coco(path, tmp_path)
    out = tmp_path / "out" / "instances.json"
    write_coco(dataset, out)
    again = read_coco(out, tmp_path)
    assert again.classes == dataset.classes
    for a, b in zip(dataset.images, again.images):
        assert (a.image_id, a.file, a.width, a.height) == (b.image_id, b.file, b.width, b.height)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.difficult, b.difficult)
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [7, 42] and sorted(coco.getCatIds()) == [1, 2, 3]
    assert min(coco.getAnnIds()) >= 1  # COCOeval reads a matched ground-truth id of 0 as "unmatched"
    (crowd,) = coco.loadAnns(coco.getAnnIds(imgIds=[42]))
    assert crowd["bbox"] == [1, 2, 3, 4] and crowd["iscrowd"] == 1 and crowd["category_id"] == 3


def test_write_coco_numbers_non_numeric_image_ids_in_order(tmp_path):
    images = [ImageBoxes(name, f"{name}.png", 10, 10, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                         np.zeros(0, bool)) for name in ("b", "a")]
    write_coco(BoxDataset(classes=["x"], images=images), tmp_path / "i.json")
    assert [im["id"] for im in json.loads((tmp_path / "i.json").read_text())["images"]] == [1, 2]


# --- the VOC 2007 reader ------------------------------------------------------------------------------------------

# name -> (width, height, [(class, difficult or None for no <difficult> element, (xmin, ymin, xmax, ymax))])
VOC_TREE = {
    "000005": (500, 375, [("chair", 0, (263, 211, 324, 339)), ("chair", 1, (5, 244, 67, 374))]),
    "000007": (500, 333, [("car", None, (141, 50, 500, 330))]),
    "000009": (500, 375, [("horse", 0, (69, 172, 270, 330)), ("person", 1, (150, 141, 229, 284)),
                          ("person", 0, (0, 10, 20, 400))]),  # a box reaching outside the image (annotation slip)
    "000012": (500, 333, [("car", 0, (156, 97, 351, 270))]),
}
VOC_SETS = {"train": ["000012"], "val": ["000005", "000009"], "trainval": ["000005", "000009", "000012"],
            "test": ["000007"]}


def write_voc_tree(root, tree=VOC_TREE, sets=VOC_SETS):
    base = root / "VOCdevkit" / "VOC2007"
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "Annotations").mkdir()
    for split, names in sets.items():
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    for name, (width, height, objects) in tree.items():
        xml = "".join(
            f"<object><name>{c}</name><pose>Left</pose><truncated>0</truncated>"
            + ("" if d is None else f"<difficult>{d}</difficult>")
            + "<bndbox>" + "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
            + "</bndbox></object>" for c, d, box in objects)
        (base / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><folder>VOC2007</folder><filename>{name}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size><segmented>0</segmented>{xml}</annotation>")
        png(base / "JPEGImages" / f"{name}.jpg", 8, 6)  # the reader does not decode; a small stand-in suffices
    return root


def test_voc_boxes_are_1_based_inclusive_made_0_based_continuous(tmp_path):
    dataset = read_voc2007_boxes(write_voc_tree(tmp_path), "val")
    assert dataset.classes == list(VOC_CLASSES)
    first = dataset.images[0]
    assert (first.image_id, first.file, first.width, first.height) == (
        "000005", "VOCdevkit/VOC2007/JPEGImages/000005.jpg", 500, 375)
    np.testing.assert_array_equal(first.boxes, [[262, 210, 324, 339], [4, 243, 67, 374]])
    assert (first.boxes[:, 2] - first.boxes[:, 0]).tolist() == [324 - 263 + 1, 67 - 5 + 1]  # the devkit's width
    assert first.labels.tolist() == [VOC_CLASSES.index("chair") + 1] * 2


def test_voc_difficult_flags_missing_means_not_difficult(tmp_path):
    root = write_voc_tree(tmp_path)
    assert read_voc2007_boxes(root, "val").images[0].difficult.tolist() == [False, True]
    assert read_voc2007_boxes(root, "test").images[0].difficult.tolist() == [False]


def test_voc_box_reaching_outside_is_clipped_and_counted(tmp_path):
    dataset = read_voc2007_boxes(write_voc_tree(tmp_path), "val")
    np.testing.assert_array_equal(dataset.images[1].boxes[2], [0, 9, 20, 375])
    assert dataset.exclusions == {CLIPPED: 1, NO_AREA: 0, NO_BOXES: 0}


def test_voc_splits_follow_the_image_set_lists(tmp_path):
    root = write_voc_tree(tmp_path)
    for split, names in VOC_SETS.items():
        assert [im.image_id for im in read_voc2007_boxes(root, split).images] == names
    assert read_voc2007_boxes(root, "trainval").n_boxes == 2 + 3 + 1


def test_voc_unknown_split_and_missing_size_are_named(tmp_path):
    root = write_voc_tree(tmp_path)
    with pytest.raises(ValueError, match="split 'validation': expected one of train, val, trainval, test"):
        read_voc2007_boxes(root, "validation")
    xml = root / "VOCdevkit" / "VOC2007" / "Annotations" / "000012.xml"
    xml.write_text(xml.read_text().replace("<width>500</width>", ""))
    with pytest.raises(ValueError, match=r"000012\.xml: no usable <size>"):
        read_voc2007_boxes(root, "train")


def test_voc_unknown_class_is_named(tmp_path):
    root = write_voc_tree(tmp_path, tree={**VOC_TREE, "000012": (500, 333, [("spaceship", 0, (1, 1, 9, 9))])})
    with pytest.raises(ValueError, match=r"000012\.xml: class 'spaceship' is not among"):
        read_voc2007_boxes(root, "train")
