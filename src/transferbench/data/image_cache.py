"""Decoded images, once per dataset x storage size x interpolation, in HDF5: every model at that resolution (and
its fine-tuning and from-scratch jobs) reads them instead of decoding JPEGs again.

    results/images/{dataset}/{size}px_{interpolation}.h5
      /{train,val,test}/images  (n, 3, size, size) uint8, chunked one image per chunk, written batch by batch
      attrs: dataset, split_hash, size, interpolation, complete = True (written last)

The stored image is what transferbench.data.images decodes: shorter side resized to `size`, centre-cropped square.
Written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import time

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from transferbench.atomic import atomic_path
from transferbench.data.images import DecodedImages
from transferbench.data.splits import SPLITS, DatasetSpec, Split

log = logging.getLogger(__name__)


def write_image_cache(dataset_spec: DatasetSpec, split_file, size: int, interpolation: str, out,
                      num_workers: int = 0, batch_size: int = 64) -> None:
    """Decode every split of the dataset at `size` px into `out`, with a progress line per batch group."""
    split = Split.load(split_file)
    total, done, started = sum(split.sizes().values()), 0, time.perf_counter()
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        for name in SPLITS:
            ids, _ = split.select(name)
            images = h5.create_group(name).create_dataset("images", shape=(len(ids), 3, size, size), dtype=np.uint8,
                                                          chunks=(1, 3, size, size) if ids else None)
            loader = DataLoader(DecodedImages(dataset_spec, ids, size, interpolation), batch_size=batch_size,
                                num_workers=num_workers)
            row = 0
            for batch in loader:
                images[row:row + len(batch)] = batch.numpy()
                row += len(batch)
                done += len(batch)
                if done % (batch_size * 20) < len(batch) or done == total:
                    rate = done / (time.perf_counter() - started)
                    log.info("%s: decoded %d/%d images at %d px, %.0f img/s, eta %.0fs", dataset_spec.name, done,
                             total, size, rate, (total - done) / rate)
        h5.attrs.update({"dataset": split.dataset, "split_hash": split.hash, "size": size,
                         "interpolation": interpolation})
        h5.attrs["complete"] = True


def _check(h5, path, split: Split, size: int | None, interpolation: str | None) -> None:
    if not h5.attrs.get("complete", False):
        raise ValueError(f"image cache {path} is unfinished; delete it and rerun")
    if h5.attrs["split_hash"] != split.hash:
        raise ValueError(f"image cache {path} was made for another split of '{split.dataset}' "
                         f"(hash {h5.attrs['split_hash']} vs {split.hash}); delete it and rerun")
    for key, expected in (("size", size), ("interpolation", interpolation)):
        recorded = h5.attrs[key].item() if hasattr(h5.attrs[key], "item") else h5.attrs[key]
        if expected is not None and recorded != expected:
            raise ValueError(f"image cache {path} holds {key} {recorded!r}, this model needs {expected!r}")


def load_images(path, split: Split, names, size: int | None = None, interpolation: str | None = None) -> torch.Tensor:
    """The named splits' images, concatenated in memory as one uint8 tensor (N, 3, S, S) (the training jobs)."""
    with h5py.File(path, "r") as h5:
        _check(h5, path, split, size, interpolation)
        return torch.from_numpy(np.concatenate([h5[n]["images"][:] for n in names]))


class CachedBatches(Dataset):
    """One split of an image cache as contiguous batches: index i is the i-th batch, read as one slice (a
    DataLoader with batch_size=None; its workers each open the file)."""

    def __init__(self, path, split: Split, name: str, batch_size: int, size: int | None = None,
                 interpolation: str | None = None):
        self.path, self.name, self.batch_size = str(path), name, batch_size
        with h5py.File(self.path, "r") as h5:
            _check(h5, path, split, size, interpolation)
            self.n_images = len(h5[name]["images"])
        self._images = None

    def __len__(self) -> int:
        return -(-self.n_images // self.batch_size)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._images is None:  # opened lazily: h5py handles must not cross the fork into workers
            self._images = h5py.File(self.path, "r")[self.name]["images"]
        return torch.from_numpy(self._images[index * self.batch_size:(index + 1) * self.batch_size])
