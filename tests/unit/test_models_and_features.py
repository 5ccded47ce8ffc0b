import h5py
import numpy as np
import pytest
import timm
import torch

from transferbench.data.splits import make_split
from transferbench.features.extract import (
    extract_to_hdf5,
    feature_attrs,
    mark_out_of_date,
    stale_features,
    stale_reasons,
)
from transferbench.features.store import load_features, mismatches
from transferbench.models.spec import ModelSpec, build_model

pytestmark = pytest.mark.unit


def demo_spec(tmp_path, width=4, depth=1, **extra):
    """A demo CNN with a checkpoint file written by the test (weights from a seeded random init)."""
    torch.manual_seed(0)
    model = timm.create_model("tb_democnn", width=width, depth=depth, num_classes=5)
    path = tmp_path / f"w{width}_d{depth}.pth"
    torch.save(model.state_dict(), path)
    return ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": width, "depth": depth},
                                         "checkpoint": str(path), "imagenet_top1": 50.0, **extra}), model


def test_demo_model_is_a_timm_model_with_pretrained_cfg(tmp_path):
    spec, _ = demo_spec(tmp_path, width=8, depth=2)
    full = spec.with_preprocessing()
    assert (full.resolution, full.crop_pct, full.mean) == (32, 1.0, (0.5, 0.5, 0.5))
    model = build_model(spec, num_classes=0)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, model.num_features) == (2, 32)


def test_checkpoint_weights_load_and_head_is_replaced(tmp_path):
    spec, source = demo_spec(tmp_path)
    model = build_model(spec, num_classes=3)
    for name, value in source.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(model.state_dict()[name], value), name
    assert model.head.out_features == 3


def test_checkpoint_of_another_architecture_fails_loudly(tmp_path):
    spec, _ = demo_spec(tmp_path)
    wrong = ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 8, "depth": 1},
                                          "checkpoint": spec.checkpoint})
    with pytest.raises((ValueError, RuntimeError), match="does not fit|size mismatch"):
        build_model(wrong, num_classes=3)


def test_scratch_build_ignores_checkpoint_and_supports_groupnorm(tmp_path):
    spec, _ = demo_spec(tmp_path)
    model = build_model(spec, num_classes=3, weights=False, norm="groupnorm_ws")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())
    assert any(type(m).__name__ == "StdConv2d" for m in model.modules())


def test_config_preprocessing_overrides_pretrained_cfg(tmp_path):
    spec, _ = demo_spec(tmp_path, resolution=24, crop_pct=0.75)
    full = spec.with_preprocessing()
    assert (full.resolution, full.crop_pct, full.interpolation) == (24, 0.75, "bilinear")


def test_extract_writes_every_split_with_attrs_and_completion_mark(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    spec, _ = demo_spec(tmp_path)
    out = tmp_path / "f.h5"
    extract_to_hdf5(spec, dataset, split_path, out, batch_size=5)
    data = load_features(out)
    for name, size in split.sizes().items():
        assert data[name][0].shape == (size, 8) and data[name][1].tolist() == split.labels[name]
    with h5py.File(out) as h5:
        assert h5.attrs["complete"] and h5.attrs["split_hash"] == split.hash and h5.attrs["resolution"] == 32
        assert h5["train"]["features"].chunks is not None
    # features equal a direct forward pass of the model on the same preprocessed images
    model = build_model(spec, num_classes=0).eval()
    from transferbench.data.images import Preprocessing, decode_images
    images = decode_images(dataset, split.ids["test"], 32, "bilinear")
    direct = model(Preprocessing(32, (0.5,) * 3, (0.25,) * 3).evaluation(images)).detach().numpy()
    np.testing.assert_allclose(data["test"][0], direct, rtol=1e-5, atol=1e-6)


def test_failed_extraction_leaves_no_file(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    spec, _ = demo_spec(tmp_path)
    (tmp_path / "folder" / split.ids["test"][3]).write_bytes(b"truncated")
    out = tmp_path / "f.h5"
    with pytest.raises(OSError, match="cannot decode"):
        extract_to_hdf5(spec, dataset, split_path, out)
    assert not out.exists() and not list(tmp_path.glob(".f.h5.tmp*"))


def test_cache_refuses_incomplete_or_mismatched_files(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    spec, _ = demo_spec(tmp_path)
    out = tmp_path / "f.h5"
    extract_to_hdf5(spec, dataset, split_path, out)
    expected = feature_attrs(spec.with_preprocessing(), split)
    assert mismatches(out, expected) == []
    assert mismatches(out, {**expected, "resolution": 48}) == ["resolution: recorded 32, expected 48"]
    with h5py.File(out, "a") as h5:
        h5.attrs["complete"] = False
    with pytest.raises(ValueError, match="incomplete|no completion mark"):
        load_features(out)


def test_stale_features_are_marked_out_of_date_and_kept(tmp_path, imagefolder_split):
    import dataclasses
    import os
    import shutil

    _, _, split_path = imagefolder_split
    dataset = imagefolder_split[0]
    spec, _ = demo_spec(tmp_path)
    good = tmp_path / "good.h5"
    extract_to_hdf5(spec, dataset, split_path, good)
    other_model, other_crop, truncated, unfinished = (tmp_path / f"{n}.h5" for n in ("model", "crop", "cut", "unf"))
    for path in (other_model, other_crop, truncated, unfinished):
        shutil.copy(good, path)
    with open(truncated, "r+b") as f:
        f.truncate(os.path.getsize(good) // 2)
    with h5py.File(unfinished, "a") as h5:
        h5.attrs["complete"] = False
    wider = dataclasses.replace(spec, kwargs={"width": 8, "depth": 1})
    cropped = dataclasses.replace(spec, crop_pct=0.5)
    requests = [(good, spec, split_path), (other_model, wider, split_path), (other_crop, cropped, split_path),
                (truncated, spec, split_path), (unfinished, spec, split_path),
                (tmp_path / "absent.h5", spec, split_path)]
    mtimes = {p: os.path.getmtime(p) for p, _, _ in requests if p.exists()}
    stale = [path for path, _ in stale_features(requests)]
    assert stale == [str(p) for p in (other_model, other_crop, truncated, unfinished)]
    assert "kwargs" in stale_reasons(other_model, wider, split_path)[0]
    other_split = make_split(dataclasses.replace(dataset, val_fraction=0.5), seed=1)
    other_split.save(tmp_path / "other_split.json")
    assert "split_hash" in stale_reasons(good, spec, tmp_path / "other_split.json")[0]
    assert "crop_pct" in stale_reasons(other_crop, cropped, split_path)[0]
    assert {p: os.path.getmtime(p) for p in mtimes} == mtimes  # looking changes nothing
    mark_out_of_date(stale)
    assert all(os.path.getmtime(p) == 0 for p in stale) and os.path.getmtime(good) > 0
    assert all(os.path.exists(p) for p in stale)  # nothing deleted before the recomputation replaces it


def test_non_finite_features_stop_extraction_and_leave_no_file(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    spec, _ = demo_spec(tmp_path)
    out = tmp_path / "f.h5"
    # float16 overflows: the stored features would be inf, so extraction refuses them
    huge = ModelSpec.from_config("cnn", {"timm": "tb_democnn", "kwargs": {"width": 4, "depth": 1},
                                         "checkpoint": spec.checkpoint, "mean": [0, 0, 0], "std": [1e-9] * 3})
    with pytest.raises(FloatingPointError, match=r"NaN or inf float16 features on 'toy' train, rows 0\.\."):
        extract_to_hdf5(huge, dataset, split_path, out, dtype="float16")
    assert not out.exists()
