"""Feature-extraction throughput of the workflow's extraction against the model's forward pass, in one run.

On a generated JPEG folder (ImageFolder layout, `--images` images at 224 px, written once into `--data`):
- once per dataset and size: the cache_images job (JPEG decode + resize in DataLoader workers into the HDF5 image
  cache that every model at that size shares); its rate is printed. These 224 px JPEGs are smaller than the 256 px
  storage size, so the cache keeps them as they are (image_cache: an upsampled image holds nothing its source does
  not) and every read decodes and resizes them again: the costliest read the cache has;
- real: transferbench.features.extract.extract_to_hdf5 on that cache, exactly what the extract_features job runs
  (batches read and decoded by a DataLoader worker, centre crop + normalize, forward in inference mode, HDF5 written
  batch by batch);
- bound: the same model's forward pass alone, in inference mode, on in-memory normalized tensors of the same batch
  size.
Prints images/s of both; last line `extract_vs_bound=<ratio>`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from transferbench.data.image_cache import write_image_cache
from transferbench.data.images import storage_size
from transferbench.data.splits import DatasetSpec, make_split
from transferbench.features.extract import extract_to_hdf5
from transferbench.models.spec import ModelSpec, build_model


def write_jpeg_folder(root: Path, n_images: int, size: int = 224, classes: int = 10, seed: int = 0) -> Path:
    """An ImageFolder tree of photo-sized JPEGs (smooth colour fields plus noise, so they compress like photos)."""
    if (root / "done").exists():
        return root
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n_images):
        split = "test" if (i // classes) % 5 == 0 else "train"
        folder = root / split / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0, 255, (3, 3))
        base = np.stack([a[k] * xx + b[k] * yy + c[k] * xx * yy for k in range(3)], axis=-1) / 2
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    (root / "done").touch()
    return root


@torch.inference_mode()
def forward_images_per_s(model, batch_size: int, resolution: int, n_images: int) -> float:
    batch = torch.randn(batch_size, 3, resolution, resolution)
    model.eval()
    model(batch)  # warm-up
    steps = max(1, n_images // batch_size)
    start = time.perf_counter()
    for _ in range(steps):
        model(batch)
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18", help="timm architecture (random weights saved as a checkpoint)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader decode workers of the real extraction")
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "transferbench-extract-bench"))
    args = parser.parse_args()

    root = write_jpeg_folder(Path(args.data) / f"jpegs{args.images}", args.images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = tmp / "weights.pth"
        torch.manual_seed(0)
        torch.save(build_model(ModelSpec("m", args.model, "checkpoint"), num_classes=10, weights=False).state_dict(),
                   checkpoint)
        spec = ModelSpec.from_config("bench", {"timm": args.model, "checkpoint": str(checkpoint), "imagenet_top1": 0.0})
        dataset = DatasetSpec("jpegs", "imagefolder", "top1", root=str(root), val_fraction=0.1)
        split = make_split(dataset, seed=0)
        split.save(tmp / "split.json")
        n = sum(split.sizes().values())

        full = spec.with_preprocessing()
        model = build_model(full, num_classes=0)
        bound = forward_images_per_s(model, args.batch_size, full.resolution, min(n, 640))
        start = time.perf_counter()
        cache = tmp / "images.h5"
        write_image_cache(dataset, tmp / "split.json", storage_size(full.resolution, full.crop_pct),
                          full.interpolation, cache, num_workers=args.workers)
        decode = n / (time.perf_counter() - start)
        start = time.perf_counter()
        extract_to_hdf5(spec, dataset, tmp / "split.json", tmp / "features.h5", batch_size=args.batch_size,
                        num_workers=args.workers, images_file=cache)
        real = n / (time.perf_counter() - start)
    print(f"model {args.model} at {full.resolution} px, batch {args.batch_size}, {torch.get_num_threads()} torch "
          f"threads, {args.workers} decode worker(s), {n} JPEGs")
    print(f"once per dataset and size, decode into the image cache: {decode:.1f} images/s")
    print(f"extraction job (cache read + preprocess + forward + HDF5): {real:.1f} images/s")
    print(f"forward pass alone on in-memory tensors:                  {bound:.1f} images/s")
    print(f"extract_vs_bound={real / bound:.3f}")


if __name__ == "__main__":
    main()
