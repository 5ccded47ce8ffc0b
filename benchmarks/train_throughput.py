"""Training throughput of the real training loop against the forward+backward bound, measured in one run.

For each demo model (config/config.yaml), the same model, batch size and optimizer run twice on the same machine:
- real: transferbench.train.loop.train_classifier reading the dataset's image cache as a training job does
  (image_cache.CachedImages: each step's batch read from the file, in `--workers` DataLoader workers, 0 as in the
  demo; per-step batch sampling, torchvision random-resized-crop + flip, normalization, SGD with Nesterov and cosine
  decay), timed by its own wall clock. The images are random pixels written as PNGs of the model's storage size and
  cached by write_image_cache, like the demo's noisy 32 px datasets: no codec halves them, so they are stored raw;
- bound: a bare loop of forward, cross-entropy, backward and the same SGD step on one pre-normalized in-memory
  batch.
Real and bound alternate `--repeats` times per model (this machine's speed drifts by 10-20% over a minute); the
ratio per model is the median of the paired ratios. Prints images/s of both per model; last line
`train_vs_bound=<lowest ratio over the models>`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from transferbench.config import PAPER_TRAINING
from transferbench.data.image_cache import CachedImages, write_image_cache
from transferbench.data.images import Preprocessing, storage_size
from transferbench.data.splits import DatasetSpec, make_split
from transferbench.models.spec import ModelSpec, build_model
from transferbench.train.loop import train_classifier

ROOT = Path(__file__).resolve().parents[1]


def bound_images_per_s(model, batch, labels, steps, lr=0.01, weight_decay=1e-5):
    # the same optimizer as the real loop (SGD weight decay = grid value / lr, the paper's convention)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay / lr)
    model.train()
    for step in range(steps + 3):
        if step == 3:  # warm-up steps excluded
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * len(batch) / (time.perf_counter() - start)


def cached_images(images: np.ndarray, folder: Path, size: int, interpolation: str):
    """(CachedImages of the training split, its labels): `images` (n, size, size, 3) written as an ImageFolder of PNGs
    (10 classes), split and cached at `size` px by the package, as the workflow's make_split and cache_images do."""
    for i, image in enumerate(images):
        split = "test" if (i // 10) % 10 == 0 else "train"
        (folder / split / f"c{i % 10}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / split / f"c{i % 10}" / f"{i:05d}.png")
    dataset = DatasetSpec("noise", "imagefolder", "top1", root=str(folder), val_fraction=0.0)
    split = make_split(dataset, seed=0)
    split.save(folder / "split.json")
    write_image_cache(dataset, folder / "split.json", size, interpolation, folder / "images.h5")
    return CachedImages(folder / "images.h5", split, "train"), np.asarray(split.labels["train"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="alternating real / bound runs per model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers reading the cache (demo: 0)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    ratios = []
    print(f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, {args.steps} steps, "
          f"{args.workers} cache reading worker(s)")
    caches, tmp = {}, tempfile.TemporaryDirectory()
    for name, entry in config["models"].items():
        spec = ModelSpec.from_config(name, {k: v for k, v in entry.items() if k != "pretrained"},
                                     checkpoint=None).with_preprocessing()
        size = storage_size(spec.resolution, spec.crop_pct)
        if (size, spec.interpolation) not in caches:  # one cache per storage size, shared, as in the workflow
            folder = Path(tmp.name) / f"{size}px_{spec.interpolation}"
            caches[size, spec.interpolation] = cached_images(
                rng.integers(0, 256, size=(args.images, size, size, 3), dtype=np.uint8), folder, size,
                spec.interpolation)
        images, labels = caches[size, spec.interpolation]
        settings = {**PAPER_TRAINING["finetune"], "steps": args.steps, "batch_size": args.batch_size,
                    "eval_every": 10**9, "checkpoint_every": 10**9, "crop_scale": [0.5, 1.0],
                    "num_workers": args.workers}
        pre = Preprocessing(spec.resolution, spec.mean, spec.std, spec.interpolation)
        torch.manual_seed(0)
        model = build_model(spec, 10, weights=False)
        train_classifier(model, images, labels, images[:2], labels[:2], pre, {**settings, "steps": 3}, 0.01, 1e-5,
                         "top1", seed=0, device=device)  # warm-up
        torch.manual_seed(0)
        bound_model = build_model(spec, 10, weights=False)
        batch = pre.evaluation(images[:args.batch_size])
        pairs = []
        for _ in range(args.repeats):
            result = train_classifier(model, images, labels, images[:2], labels[:2], pre, settings, 0.01, 1e-5,
                                      "top1", seed=0, device=device)
            real = result.images_seen / result.wall_time_s
            bound = bound_images_per_s(bound_model, batch, torch.as_tensor(labels[:args.batch_size]), args.steps)
            pairs.append((real / bound, real, bound))
        ratio, real, bound = sorted(pairs)[len(pairs) // 2]
        ratios.append(ratio)
        print(f"{name:>12}: real {real:8.0f} img/s, bound {bound:8.0f} img/s, ratio {ratio:.3f} (median of "
              f"{', '.join(f'{r:.3f}' for r, _, _ in pairs)})", flush=True)
    tmp.cleanup()
    print(f"train_vs_bound={min(ratios):.3f}")


if __name__ == "__main__":
    main()
