"""Each dataset's images at one storage size x interpolation, in one HDF5 file that every model at that size (and its
fine-tuning and from-scratch jobs) reads instead of the originals: each original is decoded and resized once, here,
and stored in the smallest of three forms (below), which the reads decode.

    results/images/{dataset}/{size}px_{interpolation}.h5
      /{train,val,test}/data     uint8 (total bytes,), contiguous: the split's entries end to end
      /{train,val,test}/offsets  int64 (n + 1,): entry i is data[offsets[i]:offsets[i + 1]]
      /{train,val,test}/raw      bool (n,): entry i is raw pixels (3, size, size) rather than an encoded image
      attrs: dataset, split_hash, size, interpolation, layout, jpeg_quality, source_bytes, stored_bytes,
             images_raw / images_source / images_jpeg (how many of each), complete = True (written last)

An image is what transferbench.data.images decodes (shorter side resized to `size`, centre-cropped square): exactly,
or for `jpeg` entries to within JPEG's error. Its entry is the smallest of three forms, so that the cache stays
within 2x its sources' bytes (disk at paper scale) while a read rarely decodes more than a storage-size image:
- `jpeg`: the storage-size pixels as a JPEG of quality 95 (4:2:0), only where the original is larger than the
  storage size. Lossy: pixels move by 2.1 levels of 255 on average on photo-like images, once, at write time
  (FFCV's ImageNet recipe likewise re-encodes half its images as JPEG, of quality 90).
- `source`: the original's own bytes (or, for datasets of pixel arrays: CIFAR, digits, a PNG of them), decoded and
  resized on every read exactly as from the dataset: identical pixels. Chosen where the original is no larger than
  the storage size (an upsampled image holds nothing its source does not) or smaller than that JPEG.
- `raw`: the pixels themselves, when neither encoding at least halves them (RAW_WORTH): small, noisy images, such as
  the demo's, where a decode at every read would cost more than the bytes it saves. Identical pixels.
Every entry is at most RAW_WORTH x its source's bytes, whatever the dataset. Measured on photo-like 500 x 375 JPEGs
of quality 90 at 256 px (benchmarks/cache_footprint.py), against the sources' bytes: raw pixels 4.1x, HDF5's
lossless gzip filter 3.4x and lzf 4.0x, PNG 2.0x and lossless WebP 1.7x (each decoded in 3-4 ms), JPEG of quality
95 0.51x (decoded in 0.8 ms, mean |error| 2.1 of 255): no lossless form keeps within 2x.

Reads (CachedImages) take any set of images, in any order, and hold nothing but the batch asked for: a job's
memory does not grow with the dataset. The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from transferbench.atomic import atomic_path
from transferbench.data.images import DecodedImages, decode_image, decode_images, resize_square
from transferbench.data.splits import SPLITS, DatasetSpec, Split

log = logging.getLogger(__name__)

LAYOUT = "entries-v1"  # raw or encoded bytes per image; caches of raw pixel arrays (before it) are refused
JPEG_QUALITY = 95
RAW_WORTH = 2  # an encoding must at least halve an image's bytes to be worth a decode at every read
COPY_BLOCK = 64 << 20  # bytes per write when the spooled entries go into the HDF5 file


class CacheEntries(Dataset):
    """Item i: (entry as uint8 bytes, its form: 'raw' | 'source' | 'jpeg', the source's byte count) of sample i;
    encoded in DataLoader workers."""

    def __init__(self, decoded: DecodedImages):
        self.decoded = decoded

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, index: int) -> tuple[np.ndarray, str, int]:
        image = self.decoded.open(index)
        pixels = resize_square(image, self.decoded.size, self.decoded.interpolation)
        source = self.decoded.source_bytes(index)
        encoded, form = source, "source"
        if min(image.size) > self.decoded.size:  # downscaled: a JPEG of the stored pixels may beat the original
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
            if buffer.tell() < len(source):
                encoded, form = buffer.getvalue(), "jpeg"
        if pixels.nbytes <= RAW_WORTH * len(encoded):
            return np.ascontiguousarray(pixels.transpose(2, 0, 1)).reshape(-1), "raw", len(source)
        return np.frombuffer(encoded, dtype=np.uint8), form, len(source)


def _as_list(batch):
    return batch


def write_image_cache(dataset_spec: DatasetSpec, split_file, size: int, interpolation: str, out,
                      num_workers: int = 0, batch_size: int = 64) -> None:
    """Decode every split of the dataset at `size` px into `out` (entries as in the module docstring), with a
    progress line per batch group and the cache's size against its sources' at the end."""
    split = Split.load(split_file)
    total, done, started = sum(split.sizes().values()), 0, time.perf_counter()
    forms, source_bytes, stored_bytes = Counter(), 0, 0
    out = Path(out)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as h5:
        for name in SPLITS:
            ids, _ = split.select(name)
            offsets, raw = [0], []
            # the split's entries are spooled to disk, then copied into one contiguous dataset (read by offset)
            with tempfile.TemporaryFile(dir=out.parent, prefix=f".{out.name}.spool-") as spool:
                loader = DataLoader(CacheEntries(DecodedImages(dataset_spec, ids, size, interpolation)),
                                    batch_size=batch_size, num_workers=num_workers, collate_fn=_as_list)
                for batch in loader:
                    for entry, form, n_source in batch:
                        spool.write(entry.data)
                        offsets.append(offsets[-1] + entry.size)
                        raw.append(form == "raw")
                        forms[form] += 1
                        source_bytes += n_source
                    done += len(batch)
                    if done % (batch_size * 20) < len(batch) or done == total:
                        rate = done / (time.perf_counter() - started)
                        log.info("%s: decoded %d/%d images at %d px, %.0f img/s, eta %.0fs", dataset_spec.name, done,
                                 total, size, rate, (total - done) / rate)
                group = h5.create_group(name)
                data = group.create_dataset("data", shape=(offsets[-1],), dtype=np.uint8)  # no chunks: contiguous
                spool.seek(0)
                for start in range(0, offsets[-1], COPY_BLOCK):
                    block = np.frombuffer(spool.read(COPY_BLOCK), dtype=np.uint8)
                    data[start:start + len(block)] = block
                group.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
                group.create_dataset("raw", data=np.asarray(raw, dtype=bool))
                stored_bytes += offsets[-1]
        h5.attrs.update({"dataset": split.dataset, "split_hash": split.hash, "size": size,
                         "interpolation": interpolation, "layout": LAYOUT, "jpeg_quality": JPEG_QUALITY,
                         "source_bytes": source_bytes, "stored_bytes": stored_bytes,
                         **{f"images_{form}": forms[form] for form in ("raw", "source", "jpeg")}})
        h5.attrs["complete"] = True
    log.info("%s at %d px: %.1f MB for %.1f MB of sources (%.2fx); entries: %d jpeg, %d source, %d raw",
             dataset_spec.name, size, stored_bytes / 1e6, source_bytes / 1e6, stored_bytes / max(source_bytes, 1),
             forms["jpeg"], forms["source"], forms["raw"])


def _check(h5, path, split: Split, size: int | None, interpolation: str | None) -> None:
    if not h5.attrs.get("complete", False):
        raise ValueError(f"image cache {path} is unfinished; delete it and rerun")
    if h5.attrs.get("layout") != LAYOUT:
        raise ValueError(f"image cache {path} has an older layout (raw pixel arrays); delete it and rerun")
    if h5.attrs["split_hash"] != split.hash:
        raise ValueError(f"image cache {path} was made for another split of '{split.dataset}' "
                         f"(hash {h5.attrs['split_hash']} vs {split.hash}); delete it and rerun")
    for key, expected in (("size", size), ("interpolation", interpolation)):
        recorded = h5.attrs[key].item() if hasattr(h5.attrs[key], "item") else h5.attrs[key]
        if expected is not None and recorded != expected:
            raise ValueError(f"image cache {path} holds {key} {recorded!r}, this model needs {expected!r}")


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches of n images, as slices (a DataLoader sampler over CachedImages with batch_size=None)."""
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def load_images(dataset_spec: DatasetSpec, split: Split, names, size: int, interpolation: str, images_file=None,
                num_workers: int = 0, subset=None):
    """The images of the named splits (optionally only a training-set subset's, data.subsets.Subset) for a training
    job: read batch by batch from the image cache when there is one (decoded once for every model at this size),
    else decoded here and held in memory (standalone runs without a cache)."""
    names = (names,) if isinstance(names, str) else tuple(names)
    if images_file is not None:
        images = CachedImages(images_file, split, names, size, interpolation)
        return images if subset is None else images.take(subset.positions)
    ids, labels = split.select(*names)
    if subset is not None:
        ids, _ = subset.select(ids, labels)
    return decode_images(dataset_spec, ids, size, interpolation, num_workers)


class CachedImages(Dataset):
    """The images of the named splits of an image cache, one after the other, read on demand.

    `images[key]`, with a 1-D index array or tensor (any order, repeats allowed) or a slice, is a uint8 tensor
    (k, 3, S, S) in that order; an int gives (3, S, S). Only that batch is in memory (plus 17 bytes of entry
    positions per image). Each entry is one os.pread at its position in the file (a few microseconds, no HDF5 call),
    in file order, each process through its own descriptor, so DataLoader workers read and decode in parallel.
    """

    def __init__(self, path, split: Split, names, size: int | None = None, interpolation: str | None = None):
        self.path, self._fd, self._pid = str(path), None, None
        names = [names] if isinstance(names, str) else list(names)
        starts, lengths, raw = [], [], []
        with h5py.File(self.path, "r") as h5:
            _check(h5, path, split, size, interpolation)
            self.size, self.interpolation = int(h5.attrs["size"]), str(h5.attrs["interpolation"])
            for name in names:
                offsets = h5[name]["offsets"][:]
                starts.append((h5[name]["data"].id.get_offset() or 0) + offsets[:-1])  # positions in the file
                lengths.append(np.diff(offsets))
                raw.append(h5[name]["raw"][:])
        self._starts, self._lengths, self._raw = (np.concatenate(a) for a in (starts, lengths, raw))

    def __len__(self) -> int:
        return len(self._raw)

    def take(self, positions) -> CachedImages:
        """The images at `positions` (in that order) as a CachedImages of their own, e.g. a training-set subset."""
        view = copy.copy(self)
        view._fd, view._pid = None, None  # its own descriptor, opened on first read
        positions = np.asarray(positions, dtype=np.int64)
        view._starts, view._lengths, view._raw = (a[positions] for a in (self._starts, self._lengths, self._raw))
        return view

    def __getstate__(self):  # a descriptor is per process
        return {**self.__dict__, "_fd": None, "_pid": None}

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)

    def _descriptor(self) -> int:
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        indices = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"image index out of range for {len(self)} images in {self.path}")
        out = torch.empty((len(indices), 3, self.size, self.size), dtype=torch.uint8)
        rows, fd = out.numpy().reshape(len(indices), 3 * self.size * self.size), self._descriptor()
        order = np.argsort(self._starts[indices], kind="stable")  # in file order
        chosen = indices[order]
        # plain Python numbers in the loop: numpy scalars cost more than the reads on small images
        for position, start, length, raw in zip(order.tolist(), self._starts[chosen].tolist(),
                                                self._lengths[chosen].tolist(), self._raw[chosen].tolist()):
            if raw:  # straight into the batch
                os.preadv(fd, [rows[position]], start)
            else:
                rows[position] = decode_image(os.pread(fd, length, start), self.size, self.interpolation).reshape(-1)
        return out
