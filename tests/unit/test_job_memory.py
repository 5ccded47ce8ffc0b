"""A job's memory is bounded by a few batches and the model, whatever the dataset's size: the training and the
extraction job, each run in its own process on a dataset of N and of 4N images from the image cache, peak at the
same resident memory (ru_maxrss), within a small fraction of what 4N images take decoded. Every split of both
datasets holds at least a batch (32 images), so the two differ in their number of batches only."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import transferbench.models.demo  # noqa: F401  (registers tb_democnn with timm)
from transferbench.data.image_cache import write_image_cache
from transferbench.data.splits import DatasetSpec, make_split
from transferbench.data.synthetic import photo_like

pytestmark = pytest.mark.unit

# 4N images at 256 px: 157 MB decoded. Trained at 64 px, so that activations (and the allocator's run-to-run noise
# in ru_maxrss, about 10 MB here) stay small beside the images.
N, SIZE = 200, 256

JOB = textwrap.dedent('''
    import resource, sys
    import transferbench.models.demo  # noqa: F401  (registers tb_democnn with timm)
    from transferbench.data.splits import DatasetSpec
    from transferbench.features.extract import extract_to_hdf5
    from transferbench.models.spec import ModelSpec
    from transferbench.train.run import run_training

    job, split_csv, split, images, checkpoint, out = sys.argv[1:]
    model = ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                          "checkpoint": checkpoint, "imagenet_top1": 50.0, "resolution": 64,
                                          "crop_pct": 64 / %d})  # stored at SIZE px
    dataset = DatasetSpec("photos", "csv", "top1", root=split_csv.rsplit("/", 1)[0], split_file=split_csv)
    if job == "train":
        settings = {"steps": 8, "batch_size": 32, "momentum": 0.9, "nesterov": True, "crop_scale": [0.5, 1.0],
                    "flip": True, "weight_decay_divided_by_lr": True, "num_workers": 0}
        run_training("finetune", model, dataset, split, settings, 0.01, 1e-5, "grid", 0, out, None,
                     device="cpu", images_file=images)
    else:
        extract_to_hdf5(model, dataset, split, out, batch_size=32, device="cpu", images_file=images)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: kilobytes
''' % SIZE)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Photo-like JPEGs (160 x 120, quality 90) listed by two split files, N and 4N images (3:1:1 train, val, test),
    each with its image cache at SIZE px; and a demo CNN checkpoint."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4 * N):
        Image.fromarray(photo_like(rng, 160, 120)).save(root / f"{i:04d}.jpg", quality=90)
        rows.append(f"{i:04d}.jpg,c{i % 4},{('val', 'test', 'train', 'train', 'train')[i % 5]}")
    torch.manual_seed(0)
    torch.save(timm.create_model("tb_democnn", width=4, depth=1, num_classes=4).state_dict(), root / "cnn.pth")
    for n in (N, 4 * N):
        (root / f"n{n}.csv").write_text("\n".join(["path,label,split", *rows[:n]]) + "\n")
        spec = DatasetSpec("photos", "csv", "top1", root=str(root), split_file=str(root / f"n{n}.csv"))
        make_split(spec, seed=0).save(root / f"n{n}")
        write_image_cache(spec, root / f"n{n}", SIZE, "bilinear", root / f"n{n}.h5")
    return root


def peak_bytes(job, root, tmp_path, sizes) -> list[int]:
    """Peak resident bytes of `job` on each dataset size, the jobs run side by side."""
    procs = []
    for n in sizes:
        out = tmp_path / f"{job}{n}.{'json' if job == 'train' else 'h5'}"
        procs.append((out, subprocess.Popen([sys.executable, "-c", JOB, job, str(root / f"n{n}.csv"),
                                             str(root / f"n{n}"), str(root / f"n{n}.h5"), str(root / "cnn.pth"),
                                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    peaks = []
    for out, proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.exists(), stderr[-3000:]
        peaks.append(int(stdout.split()[-1]))
    return peaks


@pytest.mark.parametrize("job", ["train", "extract"])
def test_peak_memory_of_a_job_does_not_grow_with_its_dataset(job, datasets, tmp_path):
    small, large = peak_bytes(job, datasets, tmp_path, (N, 4 * N))
    decoded_4n = 4 * N * 3 * SIZE * SIZE
    # holding train and val whole, as training jobs did, would add 2.4N images (94 MB); allowed: a fifth of all 4N's
    assert large - small < 0.2 * decoded_4n, f"peak {small >> 20} MiB on {N} images, {large >> 20} MiB on {4 * N}"
