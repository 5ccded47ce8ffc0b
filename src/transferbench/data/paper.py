"""The 12 datasets of the paper (Kornblith et al. 2019, Table 1), read from their creators' files.

Each reader takes the data root (config `data_root`) and returns a Split whose ids are image paths relative to
that root (CIFAR: 'file:index' into the pickled batches). The on-disk layout is the one torchvision's downloaders
write (so `prefetch` fills it with torchvision where torchvision can), plus the creators' split files torchvision
does not fetch (SUN397 partitions, Birdsnap's image list). The readers are written here rather than taken from
torchvision's dataset classes because those keep their samples in private attributes, verify archive checksums
that test trees cannot match, and do not implement the paper's splits (SUN397 partition 1, Caltech-101 with 30
images per class and its background class, VOC 2007 as multi-label classification).

Split conventions (the paper's; README Conventions): the creators' validation split where one exists (Aircraft,
VOC 2007, DTD, Flowers); elsewhere a seeded, class-stratified hold-out of `val_fraction` of train
(data.splits.with_val_holdout).
"train" in the paper's Table 1 is train + val.
"""

from __future__ import annotations

import json
import pickle
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferbench.hints import PREFETCH_HINT
from transferbench.seeding import derive_seed

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VOC_INDEX = {c: i for i, c in enumerate(VOC_CLASSES)}


class MissingDataError(FileNotFoundError):
    """A dataset file is not where the layout says; the message names it, the layout and how to fetch it."""


@dataclass(frozen=True)
class PaperDataset:
    """One dataset of the paper: its Table 1 facts and where its files live under the data root."""

    source: str
    title: str
    classes: int
    train: int  # Table 1 "train" (train + val of the final fit)
    test: int
    metric: str
    creators_val: bool
    layout: str  # what the reader expects under the data root
    fetch: str  # how prefetch gets it ('torchvision', or what to do by hand)
    image_side: int | None = None  # the originals' side in pixels where all are one small size (CIFAR: 32)

    @property
    def folder(self) -> str:
        """The dataset's top folder under the data root (the first part of its layout)."""
        return self.layout.split("/", 1)[0]


def _ds(source, title, classes, train, test, metric, creators_val, layout, fetch="torchvision", image_side=None):
    return PaperDataset(source, title, classes, train, test, metric, creators_val, layout, fetch, image_side)


PAPER_DATASETS = {d.source: d for d in (
    _ds("food101", "Food-101", 101, 75750, 25250, "top1", False,
        "food-101/meta/{train,test}.json, food-101/images/<class>/<id>.jpg"),
    _ds("cifar10", "CIFAR-10", 10, 50000, 10000, "top1", False,
        "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta} (python pickles)", image_side=32),
    _ds("cifar100", "CIFAR-100", 100, 50000, 10000, "top1", False,
        "cifar-100-python/{train,test,meta} (python pickles)", image_side=32),
    _ds("birdsnap", "Birdsnap", 500, 47386, 2443, "top1", False,
        "birdsnap/{images.txt,species.txt,test_images.txt} and birdsnap/download/images/<path> (official image list)",
        fetch="birdsnap image list"),
    _ds("sun397", "SUN397", 397, 19850, 19850, "top1", False,
        "SUN397/ClassName.txt, SUN397/<letter>/<class>/sun_*.jpg, SUN397/Partitions/{Training,Testing}_01.txt"),
    _ds("stanford_cars", "Stanford Cars", 196, 8144, 8041, "top1", False,
        "stanford_cars/devkit/{cars_meta.mat,cars_train_annos.mat}, stanford_cars/cars_test_annos_withlabels.mat, "
        "stanford_cars/{cars_train,cars_test}/<file>.jpg",
        fetch="by hand: the creators' URL is gone (torchvision cannot download it); unpack a copy into this layout"),
    _ds("fgvc_aircraft", "FGVC Aircraft", 100, 6667, 3333, "mean_per_class", True,
        "fgvc-aircraft-2013b/data/{variants.txt,images_variant_{train,val,test}.txt,images/<id>.jpg}"),
    _ds("voc2007", "PASCAL VOC 2007", 20, 5011, 4952, "map_11point", True,
        "VOCdevkit/VOC2007/{ImageSets/Main/{train,val,test}.txt,Annotations/<id>.xml,JPEGImages/<id>.jpg}"),
    _ds("dtd", "DTD", 47, 3760, 1880, "top1", True,
        "dtd/dtd/labels/{train,val,test}<partition>.txt, dtd/dtd/images/<class>/<file>.jpg"),
    _ds("oxford_pets", "Oxford-IIIT Pets", 37, 3680, 3669, "mean_per_class", False,
        "oxford-iiit-pet/annotations/{trainval,test}.txt, oxford-iiit-pet/images/<name>.jpg"),
    _ds("caltech101", "Caltech-101", 102, 3060, 6084, "mean_per_class", False,
        "caltech101/101_ObjectCategories/<class>/image_<n>.jpg (BACKGROUND_Google included: 102 classes)"),
    _ds("flowers102", "Oxford 102 Flowers", 102, 2040, 6149, "mean_per_class", True,
        "flowers-102/{imagelabels.mat,setid.mat,jpg/image_<n>.jpg}"),
)}
SMALL_DATASETS = ("stanford_cars", "fgvc_aircraft", "voc2007", "dtd", "oxford_pets", "caltech101", "flowers102")


def require(path: Path, source: str) -> Path:
    """`path` if it exists, else a MissingDataError naming it, the expected layout and the prefetch command."""
    if not path.exists():
        d = PAPER_DATASETS[source]
        how = PREFETCH_HINT if d.fetch in ("torchvision", "birdsnap image list") else d.fetch
        raise MissingDataError(f"dataset {d.title} ({source}): {path} is missing; expected under the data root: "
                               f"{d.layout}; to fetch it: {how}")
    return path


def _lines(path: Path, source: str) -> list[str]:
    return [line.strip() for line in require(path, source).read_text().splitlines() if line.strip()]


def _class_index(index: dict, name: str, where) -> int:
    """index[name], or an error naming the file, the unknown class and a few known ones."""
    if name not in index:
        raise ValueError(f"{where}: class {name!r} is not among the dataset's {len(index)} classes "
                         f"(e.g. {', '.join(map(str, list(index)[:3]))}); the files do not belong together")
    return index[name]


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# Each reader: (root, options) -> (classes, {split: ids}, {split: labels}); splits without 'val' get the hold-out.

def read_food101(root: Path, options: dict):
    base = root / "food-101"
    ids, labels, classes = {}, {}, None
    for split in ("train", "test"):
        path = require(base / "meta" / f"{split}.json", "food101")
        listing = json.loads(path.read_text())
        classes = classes or sorted(listing)
        index = {c: i for i, c in enumerate(classes)}
        ids[split] = [f"food-101/images/{stem}.jpg" for c in sorted(listing) for stem in listing[c]]
        labels[split] = [_class_index(index, c, path) for c in sorted(listing) for _ in listing[c]]
    return classes, ids, labels


def _unpickle(path: Path, source: str) -> dict:
    with open(require(path, source), "rb") as f:
        return pickle.load(f, encoding="latin1")  # the creators' Python 2 pickles (torchvision reads them so too)


CIFAR_FILES = {"cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                           "batches.meta", "label_names", "labels"),
               "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_label_names", "fine_labels")}


def read_cifar(source: str):
    def read(root: Path, options: dict):
        folder, train_files, test_files, meta, names_key, labels_key = CIFAR_FILES[source]
        classes = list(_unpickle(root / folder / meta, source)[names_key])
        ids, labels = {}, {}
        for split, files in (("train", train_files), ("test", test_files)):
            ids[split], labels[split] = [], []
            for name in files:
                batch = _unpickle(root / folder / name, source)
                ids[split] += [f"{folder}/{name}:{i}" for i in range(len(batch[labels_key]))]
                labels[split] += [int(y) for y in batch[labels_key]]
        return classes, ids, labels
    return read


def cifar_image(root: Path, source: str, sample_id: str, cache: dict) -> np.ndarray:
    """One CIFAR image (32, 32, 3) uint8 from its 'folder/file:index' id; `cache` keeps decoded batches."""
    file, index = sample_id.rsplit(":", 1)
    if file not in cache:
        data = np.asarray(_unpickle(root / file, source)["data"], dtype=np.uint8)
        cache[file] = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows hold R, G, B planes
    return cache[file][int(index)]


def read_birdsnap(root: Path, options: dict):
    """The official list (images.txt: tab-separated with a header, columns url, md5, path, species_id, ...; species
    ids 1..500) with test_images.txt naming the test images. Images that could not be downloaded (absent under
    download/images/) are left out and recorded: `notes` in the split file counts them per split and lists them."""
    base = root / "birdsnap"
    rows = _lines(base / "images.txt", "birdsnap")
    header = rows[0].split("\t")
    try:
        path_col, species_col = header.index("path"), header.index("species_id")
    except ValueError:
        raise ValueError(f"{base / 'images.txt'}: header {header[:5]} lacks 'path' or 'species_id'") from None
    species = {}
    for line in _lines(base / "species.txt", "birdsnap")[1:]:
        fields = line.split("\t")
        species[int(fields[0])] = fields[1]
    test_paths = set(_lines(base / "test_images.txt", "birdsnap")[1:])
    classes = [species[k] for k in sorted(species)]
    index = {k: i for i, k in enumerate(sorted(species))}
    ids, labels = {"train": [], "test": []}, {"train": [], "test": []}
    missing = {"train": [], "test": []}
    for line in rows[1:]:
        fields = line.split("\t")
        path, split = fields[path_col], "test" if fields[path_col] in test_paths else "train"
        if not (base / "download" / "images" / path).is_file():
            missing[split].append(path)
            continue
        ids[split].append(f"birdsnap/download/images/{path}")
        labels[split].append(_class_index(index, int(fields[species_col]), base / "images.txt"))
    notes = {"listed": {s: len(ids[s]) + len(missing[s]) for s in ids}, "missing": {s: len(missing[s]) for s in ids},
             "missing_images": sorted(missing["train"] + missing["test"])}
    return classes, ids, labels, notes


def read_sun397(root: Path, options: dict):
    """The creators' partition `partition` (default 1, the paper's): Partitions/Training_0k.txt and Testing_0k.txt
    list '/a/abbey/sun_x.jpg'; the class is the folder path (ClassName.txt lists '/a/abbey')."""
    base, k = root / "SUN397", int(options.get("partition", 1))
    classes = [c.lstrip("/") for c in _lines(base / "ClassName.txt", "sun397")]
    index = {c: i for i, c in enumerate(classes)}
    ids, labels = {}, {}
    for split, name in (("train", "Training"), ("test", "Testing")):
        listing = base / "Partitions" / f"{name}_{k:02d}.txt"
        listed = _lines(listing, "sun397")
        ids[split] = [f"SUN397/{p.lstrip('/')}" for p in listed]
        labels[split] = [_class_index(index, p.lstrip("/").rsplit("/", 1)[0], listing) for p in listed]
    return classes, ids, labels


def read_stanford_cars(root: Path, options: dict):
    from scipy.io import loadmat

    base = root / "stanford_cars"
    classes = [str(c) for c in loadmat(require(base / "devkit" / "cars_meta.mat", "stanford_cars"),
                                       squeeze_me=True)["class_names"]]
    ids, labels = {}, {}
    for split, annos, folder in (("train", base / "devkit" / "cars_train_annos.mat", "cars_train"),
                                 ("test", base / "cars_test_annos_withlabels.mat", "cars_test")):
        records = np.atleast_1d(loadmat(require(annos, "stanford_cars"), squeeze_me=True)["annotations"])
        ids[split] = [f"stanford_cars/{folder}/{r['fname']}" for r in records]
        labels[split] = [int(r["class"]) - 1 for r in records]  # the creators count classes from 1
    return classes, ids, labels


def read_fgvc_aircraft(root: Path, options: dict):
    """Variant level (100 classes); the creators' train / val / test lists ('<image id> <variant name>')."""
    base = root / "fgvc-aircraft-2013b" / "data"
    classes = _lines(base / "variants.txt", "fgvc_aircraft")
    index = {c: i for i, c in enumerate(classes)}
    ids, labels = {}, {}
    for split in ("train", "val", "test"):
        listing = base / f"images_variant_{split}.txt"
        pairs = [line.split(" ", 1) for line in _lines(listing, "fgvc_aircraft")]
        ids[split] = [f"fgvc-aircraft-2013b/data/images/{image}.jpg" for image, _ in pairs]
        labels[split] = [_class_index(index, variant, listing) for _, variant in pairs]
    return classes, ids, labels


def voc_labels(annotation: Path, difficult: str) -> list[int]:
    """The 20-way 0/1 label vector of one image from its annotation XML. An object marked difficult counts as a
    positive with difficult='positive' (the object is in the image) and is ignored with difficult='ignore' (so an
    image whose only objects of a class are difficult is a negative for that class)."""
    vector = [0] * len(VOC_CLASSES)
    for obj in ET.parse(annotation).getroot().iter("object"):
        hard = (obj.findtext("difficult") or "0").strip() == "1"
        if hard and difficult == "ignore":
            continue
        vector[_class_index(VOC_INDEX, obj.findtext("name").strip(), annotation)] = 1
    return vector


def read_voc2007(root: Path, options: dict):
    """Classification as 20 binary problems: labels are 0/1 vectors from the annotation XML ('difficult' objects:
    option `difficult`, default 'positive'); the creators' train / val / test image sets."""
    base = root / "VOCdevkit" / "VOC2007"
    difficult = options.get("difficult", "positive")
    ids, labels = {}, {}
    for split in ("train", "val", "test"):
        names = _lines(base / "ImageSets" / "Main" / f"{split}.txt", "voc2007")
        ids[split] = [f"VOCdevkit/VOC2007/JPEGImages/{n}.jpg" for n in names]
        labels[split] = [voc_labels(require(base / "Annotations" / f"{n}.xml", "voc2007"), difficult) for n in names]
    return list(VOC_CLASSES), ids, labels


def read_dtd(root: Path, options: dict):
    """Partition `partition` (default 1, the paper's) of the creators' train / val / test lists ('class/file.jpg')."""
    base, k = root / "dtd" / "dtd", int(options.get("partition", 1))
    listed = {split: _lines(base / "labels" / f"{split}{k}.txt", "dtd") for split in ("train", "val", "test")}
    classes = sorted({p.split("/")[0] for p in listed["train"]})
    index = {c: i for i, c in enumerate(classes)}
    ids = {s: [f"dtd/dtd/images/{p}" for p in paths] for s, paths in listed.items()}
    labels = {s: [_class_index(index, p.split("/")[0], base / "labels" / f"{s}{k}.txt") for p in paths]
              for s, paths in listed.items()}
    return classes, ids, labels


def read_oxford_pets(root: Path, options: dict):
    """37 breeds; annotations/{trainval,test}.txt lines '<image> <class id 1..37> <species> <breed id>'."""
    base = root / "oxford-iiit-pet"
    ids, labels, names = {}, {}, {}
    for split, listing in (("train", "trainval"), ("test", "test")):
        rows = [line.split() for line in _lines(base / "annotations" / f"{listing}.txt", "oxford_pets")
                if not line.startswith("#")]
        ids[split] = [f"oxford-iiit-pet/images/{r[0]}.jpg" for r in rows]
        labels[split] = [int(r[1]) - 1 for r in rows]
        names.update({int(r[1]) - 1: r[0].rsplit("_", 1)[0] for r in rows})
    return [names[i] for i in sorted(names)], ids, labels


def read_caltech101(root: Path, options: dict, seed: int):
    """All 102 folders (BACKGROUND_Google included, as in the paper's Table 1); `train_per_class` (default 30)
    images of each class drawn with a seed for train, the rest is test."""
    base = require(root / "caltech101" / "101_ObjectCategories", "caltech101")
    per_class = int(options.get("train_per_class", 30))
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    ids, labels = {"train": [], "test": []}, {"train": [], "test": []}
    for c, name in enumerate(classes):
        images = sorted(_relative(root, p) for p in (base / name).iterdir() if p.suffix.lower() == ".jpg")
        if len(images) <= per_class:
            raise ValueError(f"Caltech-101 class {name} has {len(images)} images; train_per_class={per_class} "
                             "leaves none for test")
        chosen = set(np.random.default_rng(derive_seed(seed, "caltech101", name)).choice(
            len(images), size=per_class, replace=False).tolist())
        for i, image in enumerate(images):
            split = "train" if i in chosen else "test"
            ids[split].append(image)
            labels[split].append(c)
    return classes, ids, labels


def read_flowers102(root: Path, options: dict):
    """setid.mat (trnid, valid, tstid: 1-based image numbers) and imagelabels.mat (labels 1..102)."""
    from scipy.io import loadmat

    base = root / "flowers-102"
    image_labels = np.atleast_1d(loadmat(require(base / "imagelabels.mat", "flowers102"), squeeze_me=True)["labels"])
    sets = loadmat(require(base / "setid.mat", "flowers102"), squeeze_me=True)
    ids, labels = {}, {}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        numbers = np.atleast_1d(sets[key]).astype(int)
        ids[split] = [f"flowers-102/jpg/image_{n:05d}.jpg" for n in numbers]
        labels[split] = [int(image_labels[n - 1]) - 1 for n in numbers]
    return [str(i) for i in range(1, 103)], ids, labels


READERS = {"food101": read_food101, "cifar10": read_cifar("cifar10"), "cifar100": read_cifar("cifar100"),
           "birdsnap": read_birdsnap, "sun397": read_sun397, "stanford_cars": read_stanford_cars,
           "fgvc_aircraft": read_fgvc_aircraft, "voc2007": read_voc2007, "dtd": read_dtd,
           "oxford_pets": read_oxford_pets, "caltech101": read_caltech101, "flowers102": read_flowers102}


def read_paper_dataset(source: str, root, options: dict, seed: int):
    """(classes, ids, labels, notes) of a paper dataset under `root`; ids and labels lack 'val' where the creators
    have no val split (the caller holds one out)."""
    root = Path(root)
    read = READERS[source]
    out = read(root, options, seed) if source == "caltech101" else read(root, options)
    classes, ids, labels, *rest = out
    return classes, ids, labels, (rest[0] if rest else {})
