"""Training-set subsets: k examples per class, drawn from a dataset's train split (Kornblith et al. Fig. 9; BiT's
few-shot transfer).

Conventions:
- A subset is drawn from `train` only, never from `val` or `test`: selection still uses the dataset's own val split,
  which therefore never overlaps a subset, and every subset is scored on the full test split.
- Class-balanced: min(k, n_c) examples of each class c. A class with fewer than k training images contributes all
  of them; such classes are recorded (`short_classes`) and `n_train` counts what was drawn.
- `all` (k = None) is the whole train split (one draw: every draw would be the same).
- Nested across sizes: draw d orders each class's images once, by a permutation seeded by (seed, dataset, d), and
  the subset of size k is the first k of that order. A draw's smaller subsets are inside its larger ones, so a
  curve over k for one draw adds images instead of redrawing them (less noise between neighbouring sizes, as in
  a learning curve); draws are independent of each other. The permutation does not depend on k or on which sizes
  the config lists, so adding a size changes no existing subset.
- Multi-label data (VOC 2007) has no class-balanced subset (an image has several classes): an error (the paper's
  Fig. 9 leaves VOC out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferbench.atomic import write_json
from transferbench.data.splits import Split
from transferbench.seeding import derive_seed
from transferbench.sweeps import subset_name


@dataclass(frozen=True)
class Subset:
    """Positions into the split's train list (sorted), with what was asked and what was drawn."""

    dataset: str
    examples_per_class: int | None  # None: all of train
    draw: int
    positions: tuple
    split_hash: str
    short_classes: dict  # class name -> images it has, for classes with fewer than asked

    @property
    def name(self) -> str:
        return subset_name(self.examples_per_class, self.draw)

    @property
    def n_train(self) -> int:
        return len(self.positions)

    def largest_class(self, split: Split) -> int:
        """Examples of the subset's largest class: the examples-per-class value `all` stands for."""
        labels = np.asarray(split.labels["train"])[list(self.positions)]
        return int(np.bincount(labels).max())

    def save(self, path) -> None:
        write_json(path, {"dataset": self.dataset, "examples_per_class": self.examples_per_class, "draw": self.draw,
                          "n_train": self.n_train, "split_hash": self.split_hash,
                          "short_classes": self.short_classes, "positions": list(self.positions)})

    @classmethod
    def load(cls, path, split: Split | None = None) -> "Subset":
        """The subset saved at `path`; with `split`, refused when it was drawn from another split."""
        data = json.loads(Path(path).read_text())
        subset = cls(data["dataset"], data["examples_per_class"], data["draw"], tuple(data["positions"]),
                     data["split_hash"], data["short_classes"])
        if split is not None and subset.split_hash != split.hash:
            raise ValueError(f"subset file {path} was drawn from another split of '{split.dataset}' (hash "
                             f"{subset.split_hash}, the split's is {split.hash}); delete it to redraw")
        return subset

    def select(self, ids: list, labels: np.ndarray) -> tuple[list, np.ndarray]:
        """The subset's rows of the train split's (ids, labels)."""
        positions = list(self.positions)
        return [ids[p] for p in positions], np.asarray(labels)[positions]


def draw_subset(split: Split, examples_per_class: int | None, draw: int, seed: int) -> Subset:
    """Draw `draw` of `examples_per_class` examples per class from the train split (module docstring)."""
    labels = split.labels["train"]
    if labels and isinstance(labels[0], list):
        raise ValueError(f"dataset '{split.dataset}' is multi-label: class-balanced subsets need one label per "
                         "image (the paper's dataset-size experiment leaves VOC 2007 out); remove it from "
                         "sweeps.dataset_size.examples_per_class")
    if examples_per_class is not None and examples_per_class < 1:
        raise ValueError(f"examples per class must be >= 1 or 'all', not {examples_per_class}")
    labels = np.asarray(labels, dtype=np.int64)
    if examples_per_class is None:
        positions = np.arange(len(labels))
        short = {}
    else:
        rng = np.random.default_rng(derive_seed(seed, split.dataset, "subset", draw))
        order = rng.permutation(len(labels))  # one order per draw, whatever the size: nested subsets
        chosen, short = [], {}
        for c in range(len(split.classes)):
            members = order[labels[order] == c]
            if len(members) < examples_per_class:
                short[split.classes[c]] = int(len(members))
            chosen.append(members[:examples_per_class])
        positions = np.sort(np.concatenate(chosen))
    return Subset(split.dataset, examples_per_class, draw, tuple(int(p) for p in positions), split.hash, short)
