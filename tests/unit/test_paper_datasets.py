"""The paper's 12 dataset readers on trees in each dataset's real on-disk layout: split sizes, label mapping,
metric, the creators' val splits, the paper's conventions (Caltech-101 30 per class, SUN397 / DTD partition 1,
VOC multi-label with 'difficult'), missing files named with the fetch command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.paper_trees import VOC_OBJECTS, WRITERS, write_birdsnap, write_caltech101, write_cifar10
from transferbench.checks import validate_config
from transferbench.data.images import DecodedImages
from transferbench.data.paper import PAPER_DATASETS, SMALL_DATASETS, VOC_CLASSES, MissingDataError, voc_labels
from transferbench.data.splits import DatasetSpec, Split, make_split

pytestmark = pytest.mark.unit


def split_of(source, root, seed=0, **options):
    spec = DatasetSpec(name=f"my_{source}", source=source, metric=PAPER_DATASETS[source].metric, root=str(root),
                       val_fraction=0.34, options=options)
    return spec, make_split(spec, seed)


@pytest.mark.parametrize("source", sorted(set(WRITERS) - {"caltech101", "voc2007"}))
def test_reader_finds_the_creators_split_sizes_and_labels(tmp_path, source):
    sizes, n_classes, (sample, class_name), *_ = WRITERS[source](tmp_path)
    spec, split = split_of(source, tmp_path)
    found = split.sizes()
    if "train+val" in sizes:  # no creators' val: a seeded, class-stratified hold-out of train
        assert found["train"] + found["val"] == sizes["train+val"]
        assert found["val"] > 0 and found["train"] > found["val"] / 2
        assert split.n_train == sizes["train+val"]
    else:  # the creators' val split, as listed
        assert {s: found[s] for s in ("train", "val")} == {"train": sizes["train"], "val": sizes["val"]}
    assert found["test"] == sizes["test"]
    assert len(split.classes) == n_classes
    ids, labels = split.select("train", "val", "test")
    assert split.classes[labels[ids.index(sample)]] == class_name
    assert set(ids[:1]) <= set(ids) and len(set(ids)) == len(ids)
    # every listed image decodes through the pipeline's image loader
    image = DecodedImages(spec, ids, 8, "bilinear")[ids.index(sample)]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8


def test_paper_metrics_and_size_groups_follow_table_1():
    metrics = {s: d.metric for s, d in PAPER_DATASETS.items()}
    assert {s for s, m in metrics.items() if m == "mean_per_class"} == {"fgvc_aircraft", "oxford_pets", "caltech101",
                                                                       "flowers102"}
    assert metrics["voc2007"] == "map_11point"
    assert set(SMALL_DATASETS) == {s for s, d in PAPER_DATASETS.items() if d.train < 10000}
    assert {s for s, d in PAPER_DATASETS.items() if d.creators_val} == {"fgvc_aircraft", "voc2007", "dtd", "flowers102"}


def test_config_fills_the_paper_metric_and_still_requires_one_elsewhere():
    config = {"models": {"m": {"timm": "resnet18", "checkpoint": "x.pth", "imagenet_top1": 70}},
              "datasets": {"pets": {"source": "oxford_pets"}, "voc": {"source": "voc2007"},
                           "cars": {"source": "stanford_cars", "metric": "mean_per_class"}}}
    validate_config(config, cross_references=False)
    assert [config["datasets"][d]["metric"] for d in ("pets", "voc", "cars")] == ["mean_per_class", "map_11point",
                                                                                 "mean_per_class"]
    with pytest.raises(ValueError, match=r"datasets.mine.metric': required for source 'imagefolder'"):
        validate_config({"models": config["models"], "datasets": {"mine": {"source": "imagefolder", "root": "x"}}},
                        cross_references=False)


def test_cifar_ids_decode_the_pickled_rows_as_rgb_planes(tmp_path):
    *_, test_rows = write_cifar10(tmp_path)
    spec, split = split_of("cifar10", tmp_path)
    image = DecodedImages(spec, ["cifar-10-batches-py/test_batch:3"], 32, "bilinear")[0]
    assert torch.equal(image, torch.from_numpy(test_rows[3].reshape(3, 32, 32)))


def test_voc2007_is_multilabel_with_difficult_objects_positive_by_default(tmp_path):
    WRITERS["voc2007"](tmp_path)
    _, split = split_of("voc2007", tmp_path)
    assert split.sizes() == {"train": 3, "val": 2, "test": 4}  # the creators' train / val / test image sets
    assert split.classes == list(VOC_CLASSES)
    ids, labels = split.select("train", "val", "test")
    assert labels.shape == (9, 20)
    row = labels[ids.index("VOCdevkit/VOC2007/JPEGImages/000004.jpg")]
    assert {VOC_CLASSES[k] for k in np.flatnonzero(row)} == {"cat", "dog"}  # the dog is difficult: still present
    _, ignoring = split_of("voc2007", tmp_path, difficult="ignore")
    ids, labels = ignoring.select("train", "val", "test")
    assert {VOC_CLASSES[k] for k in np.flatnonzero(labels[ids.index("VOCdevkit/VOC2007/JPEGImages/000004.jpg")])} \
        == {"cat"}
    assert labels[ids.index("VOCdevkit/VOC2007/JPEGImages/000003.jpg")].sum() == 0  # its only object is difficult


def test_voc_labels_match_the_annotation_objects(tmp_path):
    WRITERS["voc2007"](tmp_path)
    for name, objects in VOC_OBJECTS.items():
        vector = voc_labels(tmp_path / "VOCdevkit/VOC2007/Annotations" / f"{name}.xml", "positive")
        assert {VOC_CLASSES[k] for k in np.flatnonzero(vector)} == {c for c, _ in objects}


def test_caltech101_keeps_background_and_draws_30_per_class_with_the_seed(tmp_path):
    write_caltech101(tmp_path, per_class=(33, 40, 31))
    _, split = split_of("caltech101", tmp_path)
    assert split.classes == ["BACKGROUND_Google", "Faces_easy", "accordion"]  # Table 1 counts 102 with background
    _, train_labels = split.select("train", "val")
    assert np.bincount(train_labels).tolist() == [30, 30, 30]
    assert split.sizes()["test"] == 33 + 40 + 31 - 90
    assert make_split(DatasetSpec("my_caltech101", "caltech101", "mean_per_class", str(tmp_path), 0.34), 0).hash \
        == split.hash  # seeded: the same draw every time
    other = split_of("caltech101", tmp_path, seed=1)[1]
    assert set(other.ids["test"]) != set(split.ids["test"])
    with pytest.raises(ValueError, match="accordion has 31 images; train_per_class=31 leaves none for test"):
        split_of("caltech101", tmp_path, train_per_class=31)


def test_partitions_other_than_the_first_are_a_config_option(tmp_path):
    WRITERS["sun397"](tmp_path)
    first = split_of("sun397", tmp_path)[1]
    second = split_of("sun397", tmp_path, partition=2)[1]
    assert set(first.select("train", "val")[0]) != set(second.select("train", "val")[0])
    WRITERS["dtd"](tmp_path)
    assert split_of("dtd", tmp_path)[1].ids["test"] != split_of("dtd", tmp_path, partition=2)[1].ids["test"]


def test_birdsnap_records_images_that_never_downloaded(tmp_path):
    write_birdsnap(tmp_path, missing=("Blue_Jay/0002.jpg", "Blue_Jay/0003.jpg"))
    _, split = split_of("birdsnap", tmp_path)
    assert split.notes["listed"] == {"train": 9, "test": 3}
    assert split.notes["missing"] == {"train": 1, "test": 1}
    assert split.notes["missing_images"] == ["Blue_Jay/0002.jpg", "Blue_Jay/0003.jpg"]
    assert split.n_train == 8 and split.sizes()["test"] == 2
    path = tmp_path / "split.json"
    split.save(path)
    assert Split.load(path).notes == split.notes  # the counts are in the split file


@pytest.mark.parametrize("source", sorted(WRITERS))
def test_missing_data_names_the_file_the_layout_and_the_fetch(tmp_path, source):
    with pytest.raises(MissingDataError) as error:
        split_of(source, tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "expected under the data root" in message
    assert ("prefetch" in message) or ("by hand" in message and source == "stanford_cars")


def test_a_class_the_dataset_does_not_know_names_the_file(tmp_path):
    WRITERS["voc2007"](tmp_path)
    xml = tmp_path / "VOCdevkit/VOC2007/Annotations/000002.xml"
    xml.write_text(xml.read_text().replace("<name>train</name>", "<name>tram</name>"))
    with pytest.raises(ValueError, match=r"000002.xml: class 'tram' is not among the dataset's 20 classes"):
        split_of("voc2007", tmp_path)
    WRITERS["fgvc_aircraft"](tmp_path)
    listing = tmp_path / "fgvc-aircraft-2013b/data/images_variant_test.txt"
    listing.write_text(listing.read_text().replace("A340-500", "A380"))
    with pytest.raises(ValueError, match=r"images_variant_test.txt: class 'A380'"):
        split_of("fgvc_aircraft", tmp_path)
    write_birdsnap(tmp_path)
    images = tmp_path / "birdsnap/images.txt"
    images.write_text(images.read_text().replace("\t3\t1\t1\t9\t9", "\t9\t1\t1\t9\t9", 1))
    with pytest.raises(ValueError, match=r"images.txt: class 9 is not among the dataset's 3 classes \(e.g. 1, 2, 3\)"):
        split_of("birdsnap", tmp_path)
