import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from transferbench.data.image_cache import CachedImages, write_image_cache
from transferbench.data.images import decode_images
from transferbench.data.splits import DatasetSpec, make_split
from transferbench.data.synthetic import photo_like
from transferbench.features.extract import extract_to_hdf5
from transferbench.features.store import load_features

from .test_models_and_features import demo_spec

pytestmark = pytest.mark.unit


def test_cache_holds_exactly_the_decoded_images(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    cache = tmp_path / "images.h5"
    write_image_cache(dataset, split_path, 24, "bilinear", cache)
    for names in (["train"], ["train", "val"], ["test"]):
        ids, _ = split.select(*names)
        assert torch.equal(CachedImages(cache, split, names, 24, "bilinear")[:],
                           decode_images(dataset, ids, 24, "bilinear"))


def test_reads_in_any_order_with_repeats_across_splits(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    write_image_cache(dataset, split_path, 24, "bilinear", tmp_path / "images.h5")
    images = CachedImages(tmp_path / "images.h5", split, ["train", "val"])
    everything = images[:]
    index = torch.tensor([len(images) - 1, 3, 0, 3, 4, 2, len(images) - 2])  # both splits, a repeat, a run
    assert torch.equal(images[index], everything[index])
    assert torch.equal(images[5], everything[5]) and images[np.array([], dtype=np.int64)].shape == (0, 3, 24, 24)
    with pytest.raises(IndexError, match="out of range"):
        images[[len(images)]]
    subset = images.take([4, 1, 1])  # a training-set subset: its own positions 0..2
    assert len(subset) == 3 and torch.equal(subset[:], everything[[4, 1, 1]])
    assert torch.equal(images[:], everything)  # the whole is unchanged


def write_mixed_folder(root, seed=0):
    """One class of each kind of image the cache meets: photographs larger than the storage size, small smooth
    images it upsamples, small noisy images that no codec halves."""
    rng = np.random.default_rng(seed)
    kinds = {"photo": lambda: photo_like(rng, 120, 90),
             "thumbnail": lambda: photo_like(rng, 16, 12),
             "noise": lambda: rng.integers(0, 256, (48, 52, 3), dtype=np.uint8)}
    for split, n in (("train", 6), ("test", 3)):
        for kind, draw in kinds.items():
            (root / split / kind).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(draw()).save(root / split / kind / f"{i}.{'png' if kind == 'noise' else 'jpg'}",
                                             quality=90)
    return root


def mixed_cache(tmp_path):
    """The mixed folder's dataset and split, and its image cache (48 px, bicubic) at tmp_path/images.h5."""
    dataset = DatasetSpec("mixed", "imagefolder", "top1", root=str(write_mixed_folder(tmp_path / "mixed")),
                          val_fraction=0.0)
    split = make_split(dataset, seed=0)
    split.save(tmp_path / "split.json")
    write_image_cache(dataset, tmp_path / "split.json", 48, "bicubic", tmp_path / "images.h5")
    return dataset, split


def test_each_image_is_stored_in_its_smallest_form_within_twice_its_source(tmp_path):
    dataset, split = mixed_cache(tmp_path)
    with h5py.File(tmp_path / "images.h5") as h5:
        counts = {form: int(h5.attrs[f"images_{form}"]) for form in ("jpeg", "source", "raw")}
        assert counts == {"jpeg": 9, "source": 9, "raw": 9}  # photographs, thumbnails, noise
        assert 0 < h5.attrs["stored_bytes"] <= 2 * h5.attrs["source_bytes"]
    for name in ("train", "test"):
        ids, labels = split.select(name)
        cached = CachedImages(tmp_path / "images.h5", split, name)[:]
        decoded = decode_images(dataset, ids, 48, "bicubic")
        photo = torch.as_tensor(labels == split.classes.index("photo"))
        assert torch.equal(cached[~photo], decoded[~photo])  # source and raw entries: the very pixels
        # JPEG of quality 95: at 48 px, where a 120 px photograph's detail is dense, about 5 levels of 255 (at 256 px
        # from 500 px, about 2: benchmarks/cache_footprint.py)
        assert (cached[photo].float() - decoded[photo].float()).abs().mean() < 8


def test_cache_of_another_size_split_or_layout_is_refused(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    cache = tmp_path / "images.h5"
    write_image_cache(dataset, split_path, 24, "bilinear", cache)
    with pytest.raises(ValueError, match="holds size 24, this model needs 32"):
        CachedImages(cache, split, ["train"], 32, "bilinear")
    with h5py.File(cache, "a") as h5:
        h5.attrs["split_hash"] = "0" * 16
    with pytest.raises(ValueError, match="another split"):
        CachedImages(cache, split, "train")
    with h5py.File(cache, "a") as h5:
        del h5.attrs["layout"]
    with pytest.raises(ValueError, match="older layout"):
        CachedImages(cache, split, "train")


def test_extraction_from_the_cache_equals_decoding(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    spec, _ = demo_spec(tmp_path)
    write_image_cache(dataset, split_path, 32, "bilinear", tmp_path / "images.h5")
    extract_to_hdf5(spec, dataset, split_path, tmp_path / "cached.h5", batch_size=8, images_file=tmp_path / "images.h5")
    extract_to_hdf5(spec, dataset, split_path, tmp_path / "decoded.h5", batch_size=8)
    cached, decoded = load_features(tmp_path / "cached.h5"), load_features(tmp_path / "decoded.h5")
    for name in cached:
        np.testing.assert_array_equal(cached[name][0], decoded[name][0])


def test_training_from_the_cache_in_workers_equals_training_in_memory(tmp_path):
    import timm

    from transferbench.data.images import Preprocessing
    from transferbench.train.loop import train_classifier

    from .test_training import SETTINGS

    _, split = mixed_cache(tmp_path)
    train, test = (CachedImages(tmp_path / "images.h5", split, name) for name in ("train", "test"))
    (_, train_labels), (_, test_labels) = split.select("train"), split.select("test")
    outputs = []
    for train_images, test_images, workers in ((train, test, 2), (train[:], test[:], 0)):
        torch.manual_seed(0)
        model = timm.create_model("tb_democnn", width=4, depth=1, num_classes=3)
        result = train_classifier(model, train_images, train_labels, test_images, test_labels,
                                  Preprocessing(32, (0.5,) * 3, (0.25,) * 3), {**SETTINGS, "num_workers": workers},
                                  0.05, 1e-5, "top1", seed=3, device=torch.device("cpu"))
        outputs.append(result.outputs)
    np.testing.assert_array_equal(*outputs)
