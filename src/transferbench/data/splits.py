"""Datasets and their splits.

A dataset is a list of samples (ids: relative file paths, or indices for in-memory data) with labels, divided
into train / val / test. The split is computed once per dataset and saved (`results/splits/{dataset}.json`), with
a hash that every downstream file records, so features never mix splits.

Conventions (the paper's; README Conventions): use the data's own val split where it has one; otherwise a seeded,
class-stratified hold-out of `val_fraction` of train. After model selection, train+val is the training set, so
`n_train` (the paper's Table 1 "train") counts both.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from transferbench.atomic import write_json
from transferbench.data.paper import PAPER_DATASETS, read_paper_dataset
from transferbench.seeding import derive_seed

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str  # 'sklearn_digits' | 'imagefolder' | 'generated' | 'csv' | a paper dataset (paper_datasets)
    metric: str
    root: str | None = None  # paper datasets: the data root holding each dataset's folder
    val_fraction: float = 0.2
    test_fraction: float = 0.3
    split_file: str | None = None  # csv: rows of path (relative to root), label, split
    options: dict = field(default_factory=dict)  # paper datasets: partition, train_per_class, difficult

    @classmethod
    def from_config(cls, name: str, entry: dict, root: str | None = None) -> "DatasetSpec":
        """`root` is where the data lives for generated data (the workflow's output folder)."""
        return cls(name=name, source=entry["source"], metric=entry["metric"], root=root or entry.get("root"),
                   val_fraction=entry.get("val_fraction", 0.2), test_fraction=entry.get("test_fraction", 0.3),
                   split_file=entry.get("split_file"),
                   options={k: entry[k] for k in ("partition", "train_per_class", "difficult") if k in entry})


@dataclass
class Split:
    """Samples of each split: ids, integer labels, and the class names. Saved as JSON with its content hash."""

    dataset: str
    classes: list
    ids: dict  # split -> list of ids
    labels: dict  # split -> list of int labels (multi-label data: lists of 0/1, one per class)
    notes: dict = field(default_factory=dict)  # what the split left out and why (e.g. Birdsnap's lost images)

    @property
    def hash(self) -> str:
        payload = json.dumps([self.dataset, self.classes, self.ids, self.labels], sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def sizes(self) -> dict:
        return {s: len(self.ids[s]) for s in SPLITS}

    @property
    def n_train(self) -> int:
        """Training examples of the final fit (train + val), the paper's Table 1 'train'."""
        return len(self.ids["train"]) + len(self.ids["val"])

    def save(self, path) -> None:
        write_json(path, {"dataset": self.dataset, "classes": self.classes, "ids": self.ids, "labels": self.labels,
                          "sizes": self.sizes(), "n_train": self.n_train, "hash": self.hash, "notes": self.notes})

    @classmethod
    def load(cls, path) -> "Split":
        data = json.loads(Path(path).read_text())
        split = cls(data["dataset"], data["classes"], data["ids"], data["labels"], data.get("notes", {}))
        if split.hash != data["hash"]:
            raise ValueError(f"split file {path} is corrupt: its content does not match its hash; delete it to rebuild")
        return split

    def select(self, *names: str) -> tuple[list, np.ndarray]:
        """Ids and labels of the named splits concatenated (e.g. 'train', 'val' for the final refit)."""
        ids = [i for n in names for i in self.ids[n]]
        labels = np.array([y for n in names for y in self.labels[n]], dtype=np.int64)
        return ids, labels


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask choosing round(fraction * n_c) examples of each class c (at least one, never all)."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = min(max(1, round(fraction * len(members))), len(members) - 1)
        held[rng.choice(members, size=k, replace=False)] = True
    return held


def _scan_imagefolder(root: Path, split: str) -> tuple[list[str], list[str]]:
    """(relative paths, class names) of `root/split/<class>/<image>`, sorted."""
    folder = root / split
    ids, names = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                ids.append(f"{split}/{class_dir.name}/{f.name}")
                names.append(class_dir.name)
    return ids, names


def imagefolder_split(spec: DatasetSpec, seed: int) -> Split:
    root = Path(spec.root)
    layout = f"expected {root}/train/<class>/<image> and {root}/test/<class>/<image> (optionally {root}/val/...)"
    for required in ("train", "test"):
        if not (root / required).is_dir():
            raise FileNotFoundError(f"dataset '{spec.name}': missing folder {root / required}; {layout}")
    train_ids, train_names = _scan_imagefolder(root, "train")
    classes = sorted(set(train_names))
    if len(classes) < 2:
        raise ValueError(f"dataset '{spec.name}': {root}/train has {len(classes)} class folder(s) with images; "
                         f"need at least 2; {layout}")
    index = {c: i for i, c in enumerate(classes)}
    ids, labels = {}, {}
    for split in ("val", "test"):
        if (root / split).is_dir():
            split_ids, split_names = _scan_imagefolder(root, split)
            unknown = sorted(set(split_names) - set(classes))
            if unknown:
                raise ValueError(f"dataset '{spec.name}': {root}/{split} has classes not in train: {unknown[:5]}")
            ids[split], labels[split] = split_ids, [index[n] for n in split_names]
    train_labels = np.array([index[n] for n in train_names])
    return _with_val_holdout(spec, seed, classes, ids, labels, train_ids, train_labels)


def _with_val_holdout(spec: DatasetSpec, seed: int, classes: list, ids: dict, labels: dict,
                      train_ids: list, train_labels: np.ndarray) -> Split:
    """The split, with a seeded class-stratified val hold-out from train when the data has no val split."""
    if "val" not in ids:
        held = _stratified_holdout(train_labels, spec.val_fraction, derive_seed(seed, spec.name, "val"))
        ids["val"] = [i for i, h in zip(train_ids, held) if h]
        labels["val"] = train_labels[held].tolist()
        train_ids, train_labels = [i for i, h in zip(train_ids, held) if not h], train_labels[~held]
    ids["train"], labels["train"] = train_ids, train_labels.tolist()
    return Split(spec.name, classes, ids, labels)


def csv_split(spec: DatasetSpec, seed: int) -> Split:
    """One folder of images plus a CSV split file with columns path (relative to root), label, split (train, val or
    test; val optional). Class indices follow the sorted label names of train."""
    import csv

    where = f"dataset '{spec.name}': split file {spec.split_file}"
    try:
        with open(spec.split_file, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise FileNotFoundError(f"{where} does not exist (config key datasets.{spec.name}.split_file)") from None
    missing = {"path", "label", "split"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{where}: missing column(s) {sorted(missing)}; expected a header row path,label,split")
    by_split = {}
    for line, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise ValueError(f"{where}, line {line}: split {row['split']!r}; expected train, val or test")
        by_split.setdefault(row["split"], []).append((row["path"], row["label"]))
    for required in ("train", "test"):
        if required not in by_split:
            raise ValueError(f"{where}: no {required} rows; expected train and test rows (val optional)")
    classes = sorted({label for _, label in by_split["train"]})
    if len(classes) < 2:
        raise ValueError(f"{where}: train has {len(classes)} label(s); need at least 2")
    index = {c: i for i, c in enumerate(classes)}
    ids, labels = {}, {}
    for split in ("val", "test"):
        if split in by_split:
            unknown = sorted({label for _, label in by_split[split]} - set(classes))
            if unknown:
                raise ValueError(f"{where}: {split} has labels not in train: {unknown[:5]}")
            ids[split] = [p for p, _ in by_split[split]]
            labels[split] = [index[label] for _, label in by_split[split]]
    train_ids = [p for p, _ in by_split["train"]]
    train_labels = np.array([index[label] for _, label in by_split["train"]])
    absent = [p for split_ids in (*ids.values(), train_ids) for p in split_ids if not (Path(spec.root) / p).is_file()]
    if absent:
        raise FileNotFoundError(f"{where}: {len(absent)} listed image(s) not found under {spec.root}, "
                                f"e.g. {absent[:3]}")
    return _with_val_holdout(spec, seed, classes, ids, labels, train_ids, train_labels)


def digits_split(spec: DatasetSpec, seed: int) -> Split:
    """scikit-learn's bundled digits (1,797 real 8x8 scans): seeded stratified test and val hold-outs."""
    from sklearn.datasets import load_digits

    labels = load_digits().target.astype(np.int64)
    ids = np.arange(len(labels))
    test = _stratified_holdout(labels, spec.test_fraction, derive_seed(seed, spec.name, "test"))
    rest = ids[~test]
    val = _stratified_holdout(labels[rest], spec.val_fraction, derive_seed(seed, spec.name, "val"))
    parts = {"train": rest[~val], "val": rest[val], "test": ids[test]}
    return Split(spec.name, [str(d) for d in range(10)], {k: v.tolist() for k, v in parts.items()},
                 {k: labels[v].tolist() for k, v in parts.items()})


def paper_split(spec: DatasetSpec, seed: int) -> Split:
    """A dataset of the paper from its creators' files under the data root (paper_datasets), with the paper's split."""
    classes, ids, labels, notes = read_paper_dataset(spec.source, spec.root, spec.options, seed)
    expected = PAPER_DATASETS[spec.source]
    if len(classes) != expected.classes:
        log.warning("dataset '%s': %d classes, the paper's %s has %d", spec.name, len(classes), expected.title,
                    expected.classes)
    train_ids, train_labels = ids.pop("train"), np.array(labels.pop("train"))
    split = _with_val_holdout(spec, seed, classes, ids, labels, train_ids, train_labels)
    split.notes = notes
    return split


def make_split(spec: DatasetSpec, seed: int) -> Split:
    if spec.source in PAPER_DATASETS:
        return paper_split(spec, seed)
    if spec.source == "sklearn_digits":
        return digits_split(spec, seed)
    if spec.source in ("imagefolder", "generated"):
        return imagefolder_split(spec, seed)
    if spec.source == "csv":
        return csv_split(spec, seed)
    raise ValueError(f"dataset '{spec.name}': unknown source {spec.source!r}; expected sklearn_digits, generated, "
                     f"imagefolder, csv or one of the paper's: {', '.join(PAPER_DATASETS)}")
