"""Small copies of the paper's 12 datasets in their real on-disk layout (file names, index, annotation and split
files as the creators and torchvision's downloaders write them), with a few tiny JPEGs per class.

Each writer returns what a correct reader must find: {split: size}, the number of classes and (for checks of the
label mapping) one (id, class name) pair.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
from PIL import Image
from scipy.io import savemat

RNG = np.random.default_rng(0)


def jpeg(path, size=12, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    base = np.full((size, size + 2, 3), RNG.integers(0, 255) if value is None else value, dtype=np.float64)
    Image.fromarray(np.clip(base + RNG.normal(0, 10, base.shape), 0, 255).astype(np.uint8)).save(path)


def write_food101(root):
    base = root / "food-101"
    classes = ["apple_pie", "baby_back_ribs", "ramen"]
    listing = {"train": {c: [f"{c}/{100 + i}" for i in range(5)] for c in classes},
               "test": {c: [f"{c}/{200 + i}" for i in range(2)] for c in classes}}
    (base / "meta").mkdir(parents=True)
    for split, entries in listing.items():
        (base / "meta" / f"{split}.json").write_text(json.dumps(entries))
        for stems in entries.values():
            for stem in stems:
                jpeg(base / "images" / f"{stem}.jpg")
    (base / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    return {"train+val": 15, "test": 6}, 3, ("food-101/images/ramen/200.jpg", "ramen")


def _cifar_batch(path, n, labels_key, n_classes):
    data = RNG.integers(0, 255, (n, 3072), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({"data": data, labels_key: [i % n_classes for i in range(n)], "filenames": [f"{i}.png" for i in
                                                                                                range(n)]}, f)
    return data


def write_cifar10(root):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": 4}, f)
    for i in range(1, 6):
        _cifar_batch(base / f"data_batch_{i}", 4, "labels", 10)
    test = _cifar_batch(base / "test_batch", 10, "labels", 10)
    return {"train+val": 20, "test": 10}, 10, ("cifar-10-batches-py/test_batch:3", "cat"), test


def write_cifar100(root):
    base = root / "cifar-100-python"
    base.mkdir(parents=True)
    names = [f"class{i:02d}" for i in range(100)]
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": ["x"]}, f)
    _cifar_batch(base / "train", 300, "fine_labels", 100)
    _cifar_batch(base / "test", 100, "fine_labels", 100)
    return {"train+val": 300, "test": 100}, 100, ("cifar-100-python/test:42", "class42")


def write_birdsnap(root, missing=("Blue_Jay/0002.jpg",)):
    """The official list (images.txt with its header row, species.txt, test_images.txt) and the images the download
    script got under download/images/; `missing` are listed images that never downloaded."""
    base = root / "birdsnap"
    species = {1: "Acadian Flycatcher", 2: "Blue Jay", 3: "Canada Goose"}
    header = ["url", "md5", "path", "species_id", "bb_x1", "bb_y1", "bb_x2", "bb_y2", "back_x", "back_y"]
    rows, tests = ["\t".join(header)], ["path"]
    for sid, name in species.items():
        folder = name.replace(" ", "_")
        for i in range(4):
            path = f"{folder}/{i:04d}.jpg"
            rows.append("\t".join([f"http://example.invalid/{path}", "0" * 32, path, str(sid), "1", "1", "9", "9",
                                   "", ""]))
            if i == 3:
                tests.append(path)
            if path not in missing:
                jpeg(base / "download" / "images" / path)
    (base / "images.txt").write_text("\n".join(rows) + "\n")
    (base / "species.txt").write_text("id\tcommon\tscientific\tdir\n" + "".join(
        f"{sid}\t{name}\tSci {sid}\t{name.replace(' ', '_')}\n" for sid, name in species.items()))
    (base / "test_images.txt").write_text("\n".join(tests) + "\n")
    return {"train+val": 8, "test": 3}, 3, ("birdsnap/download/images/Canada_Goose/0003.jpg", "Canada Goose")


def write_sun397(root):
    base = root / "SUN397"
    classes = ["/a/abbey", "/b/bedroom", "/o/office"]
    base.mkdir(parents=True)
    (base / "ClassName.txt").write_text("\n".join(classes) + "\n")
    train, test, other = [], [], []
    for c in classes:
        for i in range(6):
            path = f"{c}/sun_{c[3:]}{i}.jpg"
            jpeg(base / path.lstrip("/"))
            (train if i < 3 else test if i < 5 else other).append(path)
    (base / "Partitions").mkdir()
    (base / "Partitions" / "Training_01.txt").write_text("\n".join(train) + "\n")
    (base / "Partitions" / "Testing_01.txt").write_text("\n".join(test) + "\n")
    (base / "Partitions" / "Training_02.txt").write_text("\n".join(other + train[:3]) + "\n")
    (base / "Partitions" / "Testing_02.txt").write_text("\n".join(test) + "\n")
    return {"train+val": 9, "test": 6}, 3, ("SUN397/o/office/sun_office3.jpg", "o/office")


def _cars_annotations(path, files_classes):
    records = np.array([(f, c, 1, 1, 9, 9) for f, c in files_classes],
                       dtype=[("fname", "O"), ("class", "O"), ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
                              ("bbox_y2", "O")])
    savemat(path, {"annotations": records.reshape(1, -1)})


def write_stanford_cars(root):
    base = root / "stanford_cars"
    names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Volvo XC90 SUV 2007"]
    (base / "devkit").mkdir(parents=True)
    savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array(names, dtype=object).reshape(1, -1)})
    train = [(f"{i:05d}.jpg", i % 3 + 1) for i in range(1, 10)]
    test = [(f"{i:05d}.jpg", i % 3 + 1) for i in range(1, 5)]
    _cars_annotations(base / "devkit" / "cars_train_annos.mat", train)
    _cars_annotations(base / "cars_test_annos_withlabels.mat", test)
    for folder, rows in (("cars_train", train), ("cars_test", test)):
        for f, _ in rows:
            jpeg(base / folder / f)
    return {"train+val": 9, "test": 4}, 3, ("stanford_cars/cars_test/00003.jpg", "AM General Hummer SUV 2000")


def write_fgvc_aircraft(root):
    base = root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "A340-500", "F/A-18"]
    base.mkdir(parents=True)
    (base / "variants.txt").write_text("\n".join(variants) + "\n")
    n = 0
    for split, per in (("train", 3), ("val", 2), ("test", 2)):
        lines = []
        for v in variants:
            for _ in range(per):
                n += 1
                lines.append(f"{1000000 + n} {v}")
                jpeg(base / "images" / f"{1000000 + n}.jpg")
        (base / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
    return {"train": 9, "val": 6, "test": 6}, 3, (f"fgvc-aircraft-2013b/data/images/{1000000 + n}.jpg", "F/A-18")


VOC_OBJECTS = {"000001": [("dog", 0), ("person", 0)], "000002": [("train", 0)], "000003": [("cat", 1)],
               "000004": [("cat", 0), ("dog", 1)], "000005": [("person", 0), ("car", 0)], "000006": [("bird", 0)],
               "000007": [("car", 0)], "000008": [("cat", 0)], "000009": [("dog", 0), ("bird", 1)]}


def write_voc2007(root):
    base = root / "VOCdevkit" / "VOC2007"
    sets = {"train": ["000001", "000002", "000003"], "val": ["000004", "000005"],
            "test": ["000006", "000007", "000008", "000009"]}
    (base / "ImageSets" / "Main").mkdir(parents=True)
    (base / "Annotations").mkdir()
    for split, names in sets.items():
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            objects = "".join(f"<object><name>{c}</name><pose>Left</pose><truncated>0</truncated>"
                              f"<difficult>{d}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
                              f"<ymax>5</ymax></bndbox></object>" for c, d in VOC_OBJECTS[name])
            (base / "Annotations" / f"{name}.xml").write_text(
                f"<annotation><folder>VOC2007</folder><filename>{name}.jpg</filename>{objects}</annotation>")
            jpeg(base / "JPEGImages" / f"{name}.jpg")
    return {"train": 3, "val": 2, "test": 4}, 20, None


def write_dtd(root):
    base = root / "dtd" / "dtd"
    classes = ["banded", "blotchy", "zigzagged"]
    (base / "labels").mkdir(parents=True)
    for k in (1, 2):
        for split, rng in (("train", range(0, 2)), ("val", range(2, 4)), ("test", range(4, 6))):
            lines = [f"{c}/{c}_{(i + k) % 6:04d}.jpg" for c in classes for i in rng]
            (base / "labels" / f"{split}{k}.txt").write_text("\n".join(lines) + "\n")
    for c in classes:
        for i in range(6):
            jpeg(base / "images" / c / f"{c}_{i:04d}.jpg")
    return {"train": 6, "val": 6, "test": 6}, 3, ("dtd/dtd/images/zigzagged/zigzagged_0005.jpg", "zigzagged")


def write_oxford_pets(root):
    base = root / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1), ("american_bulldog", 2), ("yorkshire_terrier", 2)]
    (base / "annotations").mkdir(parents=True)
    for listing, rng in (("trainval", range(1, 6)), ("test", range(6, 8))):
        lines = ["#Image CLASS-ID SPECIES BREED ID"]
        for cid, (breed, species) in enumerate(breeds, start=1):
            for i in rng:
                lines.append(f"{breed}_{i} {cid} {species} {cid}")
                jpeg(base / "images" / f"{breed}_{i}.jpg")
        (base / "annotations" / f"{listing}.txt").write_text("\n".join(lines) + "\n")
    return {"train+val": 15, "test": 6}, 3, ("oxford-iiit-pet/images/yorkshire_terrier_7.jpg", "yorkshire_terrier")


def write_caltech101(root, per_class=(5, 7, 6)):
    base = root / "caltech101" / "101_ObjectCategories"
    for name, n in zip(["BACKGROUND_Google", "Faces_easy", "accordion"], per_class):
        for i in range(1, n + 1):
            jpeg(base / name / f"image_{i:04d}.jpg")
    return {"total": sum(per_class)}, 3, None


def write_flowers102(root):
    base = root / "flowers-102"
    base.mkdir(parents=True)
    labels = np.array([1, 2, 3] * 4)  # image i+1 has class labels[i]
    savemat(base / "imagelabels.mat", {"labels": labels.reshape(1, -1)})
    savemat(base / "setid.mat", {"trnid": np.array([[1, 2, 3]]), "valid": np.array([[4, 5, 6]]),
                                 "tstid": np.array([[7, 8, 9, 10, 11, 12]])})
    for i in range(1, 13):
        jpeg(base / "jpg" / f"image_{i:05d}.jpg")
    return {"train": 3, "val": 3, "test": 6}, 102, ("flowers-102/jpg/image_00012.jpg", "3")


WRITERS = {"food101": write_food101, "cifar10": write_cifar10, "cifar100": write_cifar100,
           "birdsnap": write_birdsnap, "sun397": write_sun397, "stanford_cars": write_stanford_cars,
           "fgvc_aircraft": write_fgvc_aircraft, "voc2007": write_voc2007, "dtd": write_dtd,
           "oxford_pets": write_oxford_pets, "caltech101": write_caltech101, "flowers102": write_flowers102}
