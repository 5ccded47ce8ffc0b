"""Shared fixtures: data generated in the real on-disk layout, models built through timm (no hub weights)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from PIL import Image

from transferbench.data.splits import DatasetSpec, make_split

# The two workers (pytest-xdist, --dist loadfile: a file runs whole in one worker) take files in this order, then
# the rest as collected. Minutes-long files first, so that none starts last and runs alone at the end: the SLURM
# file (its worker also takes the next file at once, hence a short one after it), then the files whose shared runs
# take minutes. (--no-loadscope-reorder in pyproject.toml keeps xdist from ordering files by their test count.)
FIRST = ["workflow/test_slurm_cluster.py", "workflow/test_tiny_study.py", "unit/test_latex_table.py",
         "workflow/test_paper_study.py", "workflow/test_sweeps.py", "workflow/test_ablation.py",
         "workflow/test_detection.py", "workflow/test_reuse.py", "workflow/test_bit.py",
         "workflow/test_readme_commands.py",
         "workflow/test_reruns.py", "workflow/test_own_models_and_data.py", "workflow/test_install.py"]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(item.path.parents[1]).as_posix(), len(FIRST)))


# A researcher's own model file (config key model_modules), registered the timm way.
NARROW_RESNET = textwrap.dedent('''
    """A width variant timm does not ship: one BasicBlock per stage, a quarter of ResNet-18's width."""
    from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
    from timm.models.resnet import BasicBlock, ResNet

    default_cfgs = generate_default_cfgs({"tb_test_resnet_narrow": {
        "input_size": (3, 32, 32), "crop_pct": 1.0, "interpolation": "bilinear", "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25), "num_classes": 1000, "classifier": "fc"}})

    @register_model
    def tb_test_resnet_narrow(pretrained=False, **kwargs):
        return build_model_with_cfg(ResNet, "tb_test_resnet_narrow", pretrained, block=BasicBlock, layers=(1, 1, 1, 1),
                                    channels=(16, 32, 64, 128), stem_width=16, **kwargs)
''')


def write_imagefolder(root, classes=("a", "b", "c"), per_class=(12, 6), size=20, seed=0, val_per_class=0):
    """A JPEG ImageFolder tree root/{train,test[,val]}/<class>/<n>.jpg whose classes differ in mean colour."""
    rng = np.random.default_rng(seed)
    splits = {"train": per_class[0], "test": per_class[1]}
    if val_per_class:
        splits["val"] = val_per_class
    for split, n in splits.items():
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros((size, size + 4, 3)) + 60 * c
                pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=95)
    return root


def write_csv_dataset(tmp_path, with_val=False):
    """One flat folder of images (a tree written by write_imagefolder, listed flat) and its split file."""
    root = write_imagefolder(tmp_path / "images", per_class=(8, 4), val_per_class=2 if with_val else 0)
    lines = ["path,label,split"]
    for image in sorted(root.rglob("*.jpg")):
        split, label = image.parts[-3], image.parts[-2]
        lines.append(f"{image.relative_to(root)},{label},{split}")
    (tmp_path / "split.csv").write_text("\n".join(lines) + "\n")
    return DatasetSpec("mine", "csv", "top1", root=str(root), split_file=str(tmp_path / "split.csv"))


@pytest.fixture
def imagefolder(tmp_path):
    return write_imagefolder(tmp_path / "folder")


@pytest.fixture
def imagefolder_split(imagefolder, tmp_path):
    spec = DatasetSpec(name="toy", source="imagefolder", metric="top1", root=str(imagefolder), val_fraction=0.25)
    split = make_split(spec, seed=0)
    path = tmp_path / "split.json"
    split.save(path)
    return spec, split, path
