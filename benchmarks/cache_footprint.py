"""Disk and memory of the image cache at paper scale, measured on photo-like JPEGs, in one run.

On `--images` generated photographs (transferbench.data.synthetic.photo_like: smooth 1/f^1.5 colour fields,
500 x 375, JPEG quality 90, about 50 KB each, like a typical photo of that size; written once into `--data`):
- the encodings a cache could use, on a sample of the images at the storage size: raw pixels, HDF5's lossless gzip
  and lzf chunk filters (one image per chunk), PNG, lossless WebP, JPEG at quality 95 and 90: bytes against the
  sources', decode time per image, mean |error| against the exact pixels;
- the cache_images job (transferbench.data.image_cache.write_image_cache) at the storage size of resnet18 at 224 px
  (256 px, bilinear): its file's bytes against the sources' and how its entries were stored; with `--paper-sizes`,
  also the other four storage sizes x interpolations of the paper's models (256 bicubic, 333, 341 and 363 bicubic),
  whose caches together are the dataset's whole footprint in the paper study;
- a short training job (transferbench.train.run.run_training: resnet18 from scratch at 224 px, batch 32, reading
  the cache a batch at a time, no workers) in its own process: its peak resident memory (ru_maxrss), and that of its
  imports alone.
Last line: `cache_vs_source=<ratio> peak_rss_mb=<train job peak>`.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from transferbench.data.image_cache import CachedImages, write_image_cache
from transferbench.data.images import DecodedImages
from transferbench.data.splits import DatasetSpec, Split, make_split
from transferbench.data.synthetic import photo_like

PAPER_CACHES = [(256, "bilinear"), (256, "bicubic"), (333, "bicubic"), (341, "bicubic"), (363, "bicubic")]

TRAIN_JOB = textwrap.dedent('''
    import resource, sys
    import torch
    from transferbench.data.splits import DatasetSpec
    from transferbench.models.spec import ModelSpec
    from transferbench.train.run import run_training

    imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    root, split, images, out, steps = sys.argv[1:]
    torch.manual_seed(0)
    model = ModelSpec.from_config("resnet18", {"timm": "resnet18", "resolution": 224,
                                               "crop_pct": 0.875, "interpolation": "bilinear"})
    settings = {"steps": int(steps), "batch_size": 32, "momentum": 0.9, "nesterov": True, "crop_scale": [0.08, 1.0],
                "flip": True, "weight_decay_divided_by_lr": True, "num_workers": 0}
    run_training("scratch", model, DatasetSpec("photos", "imagefolder", "top1", root=root), split, settings, 0.1,
                 1e-5, "grid", 0, out, None, device="cpu", images_file=images)
    print(imports, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kilobytes (Linux)
''')


def write_photo_folder(root: Path, n_images: int, classes: int = 10, seed: int = 0) -> Path:
    """An ImageFolder tree of photo-like 500 x 375 JPEGs of quality 90 (written once; reused when complete)."""
    if (root / "done").exists():
        return root
    rng = np.random.default_rng(seed)
    for i in range(n_images):
        split = "test" if (i // classes) % 5 == 0 else "train"
        folder = root / split / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo_like(rng, 500, 375)).save(folder / f"{i:05d}.jpg", quality=90)
    (root / "done").touch()
    return root


def encoded_sizes(pixels: list[np.ndarray]) -> dict:
    """Bytes of each candidate encoding of the (S, S, 3) images, with the images each decodes back to."""
    def pil(fmt, **options):
        def encode(image):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, fmt, **options)
            return buffer.getvalue()
        return encode

    def hdf5_filter(**options):  # what the filter stores for chunks of one image each
        with h5py.File(io.BytesIO(), "w") as h5:
            data = np.stack([p.transpose(2, 0, 1) for p in pixels])
            ds = h5.create_dataset("images", data=data, chunks=(1, *data.shape[1:]), **options)
            return ds.id.get_storage_size()

    out = {"raw pixels (uint8)": (sum(p.nbytes for p in pixels), None),
           "HDF5 gzip, level 4 (lossless)": (hdf5_filter(compression="gzip", compression_opts=4), None),
           "HDF5 lzf (lossless)": (hdf5_filter(compression="lzf"), None)}
    for name, encode in (("PNG (lossless)", pil("PNG", compress_level=6)),
                         ("WebP lossless", pil("WEBP", lossless=True, quality=50, method=4)),
                         ("JPEG quality 95, 4:2:0 (chosen)", pil("JPEG", quality=95, subsampling="4:2:0")),
                         ("JPEG quality 90, 4:2:0", pil("JPEG", quality=90, subsampling="4:2:0"))):
        encoded = [encode(p) for p in pixels]
        out[name] = (sum(len(e) for e in encoded), encoded)
    return out


def compare_encodings(dataset: DatasetSpec, split: Split, size: int, sample: int) -> None:
    ids = split.select("train")[0][:sample]
    decoded = DecodedImages(dataset, ids, size, "bilinear")
    pixels = [decoded[i].permute(1, 2, 0).numpy() for i in range(len(ids))]
    source = sum(len(decoded.source_bytes(i)) for i in range(len(ids)))
    print(f"encodings of {len(ids)} images at {size} px (sources: {source / len(ids) / 1e3:.1f} KB each):")
    for name, (nbytes, encoded) in encoded_sizes(pixels).items():
        line = f"  {name:<32} {nbytes / source:6.3f}x the sources"
        if encoded is not None:
            start = time.perf_counter()
            back = [np.asarray(Image.open(io.BytesIO(e)).convert("RGB")) for e in encoded]
            ms = (time.perf_counter() - start) / len(encoded) * 1e3
            error = np.mean([np.abs(b.astype(np.int16) - p).mean() for b, p in zip(back, pixels)])
            line += f", decode {ms:5.2f} ms/image, mean |error| {error:.2f} of 255"
        print(line)


def build_cache(dataset, split_file, size, interpolation, out, workers) -> tuple[float, dict]:
    start = time.perf_counter()
    write_image_cache(dataset, split_file, size, interpolation, out, num_workers=workers)
    elapsed = time.perf_counter() - start
    with h5py.File(out) as h5:
        attrs = {k: h5.attrs[k] for k in ("source_bytes", "stored_bytes", "images_jpeg", "images_source", "images_raw")}
    return elapsed, attrs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the cache_images job")
    parser.add_argument("--sample", type=int, default=100, help="images in the comparison of encodings")
    parser.add_argument("--steps", type=int, default=4, help="steps of the training job")
    parser.add_argument("--paper-sizes", action="store_true", help="also the paper's four other storage sizes")
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "transferbench-cache-bench"))
    args = parser.parse_args()

    start = time.perf_counter()
    root = write_photo_folder(Path(args.data) / f"photos{args.images}", args.images)
    sources = sum(p.stat().st_size for p in root.rglob("*.jpg"))
    print(f"{args.images} photo-like JPEGs (500 x 375, quality 90): {sources / 1e6:.1f} MB, "
          f"{sources / args.images / 1e3:.1f} KB each (ready in {time.perf_counter() - start:.0f}s)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = DatasetSpec("photos", "imagefolder", "top1", root=str(root), val_fraction=0.1)
        split = make_split(dataset, seed=0)
        split.save(tmp / "split.json")
        compare_encodings(dataset, split, 256, args.sample)

        total = 0
        for size, interpolation in PAPER_CACHES if args.paper_sizes else PAPER_CACHES[:1]:
            cache = tmp / f"{size}px_{interpolation}.h5"
            elapsed, attrs = build_cache(dataset, tmp / "split.json", size, interpolation, cache, args.workers)
            file_bytes = cache.stat().st_size
            total += file_bytes
            raw = args.images * 3 * size * size
            print(f"cache {size} px {interpolation}: {file_bytes / 1e6:.1f} MB = {file_bytes / sources:.3f}x the "
                  f"sources (raw pixels: {raw / 1e6:.0f} MB, {raw / sources:.1f}x); entries {attrs['images_jpeg']} "
                  f"jpeg, {attrs['images_source']} source, {attrs['images_raw']} raw; written at "
                  f"{args.images / elapsed:.0f} img/s with {args.workers} worker(s)")
            if (size, interpolation) == PAPER_CACHES[0]:  # resnet18's: the training job's below
                main_cache, ratio = cache, file_bytes / sources
                images = CachedImages(cache, split, "train")
                exact = DecodedImages(dataset, split.select("train")[0][:args.sample], size, interpolation)
                error = np.mean([(images[i].int() - exact[i].int()).abs().float().mean() for i in range(len(exact))])
                start = time.perf_counter()
                for batch in range(0, min(len(images), 512), 64):
                    images[np.random.default_rng(batch).choice(len(images), 64, replace=False)]
                rate = min(len(images), 512) / (time.perf_counter() - start)
                print(f"  read back: mean |error| {error:.2f} of 255 against decoding the originals; random batches "
                      f"of 64 read and decoded at {rate:.0f} img/s in one process")
        if args.paper_sizes:
            print(f"all five paper caches of this dataset: {total / 1e6:.1f} MB = {total / sources:.3f}x the sources "
                  f"(raw pixels: {sum(3 * s * s for s, _ in PAPER_CACHES) * args.images / sources:.1f}x)")

        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        proc = subprocess.run([sys.executable, "-c", TRAIN_JOB, str(root), str(tmp / "split.json"), str(main_cache),
                               str(tmp / "train.json"), str(args.steps)], capture_output=True, text=True, env=env)
        if proc.returncode:
            sys.exit(f"training job failed:\n{proc.stderr[-3000:]}")
        imports_kb, peak_kb = (int(v) for v in proc.stdout.split()[-2:])
    print(f"training job (resnet18 from scratch at 224 px, batch 32, {args.steps} steps, "
          f"{split.sizes()['train']} train / {split.sizes()['val']} val images): peak resident "
          f"{peak_kb / 1024:.0f} MB, of which its imports {imports_kb / 1024:.0f} MB")
    print(f"cache_vs_source={ratio:.3f} peak_rss_mb={peak_kb / 1024:.0f}")


if __name__ == "__main__":
    main()
