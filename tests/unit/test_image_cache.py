import h5py
import numpy as np
import pytest
import torch

from transferbench.data.image_cache import CachedBatches, load_images, write_image_cache
from transferbench.data.images import decode_images
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
        assert torch.equal(load_images(cache, split, names, 24, "bilinear"),
                           decode_images(dataset, ids, 24, "bilinear"))
    batches = CachedBatches(cache, split, "test", batch_size=4)
    assert len(batches) == 5 and torch.equal(torch.cat([batches[i] for i in range(5)]),
                                             load_images(cache, split, ["test"]))


def test_cache_of_another_size_or_split_is_refused(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    cache = tmp_path / "images.h5"
    write_image_cache(dataset, split_path, 24, "bilinear", cache)
    with pytest.raises(ValueError, match="holds size 24, this model needs 32"):
        load_images(cache, split, ["train"], 32, "bilinear")
    with h5py.File(cache, "a") as h5:
        h5.attrs["split_hash"] = "0" * 16
    with pytest.raises(ValueError, match="another split"):
        CachedBatches(cache, split, "train", 8)


def test_extraction_from_the_cache_equals_decoding(tmp_path, imagefolder_split):
    dataset, split, split_path = imagefolder_split
    spec, _ = demo_spec(tmp_path)
    write_image_cache(dataset, split_path, 32, "bilinear", tmp_path / "images.h5")
    extract_to_hdf5(spec, dataset, split_path, tmp_path / "cached.h5", batch_size=8, images_file=tmp_path / "images.h5")
    extract_to_hdf5(spec, dataset, split_path, tmp_path / "decoded.h5", batch_size=8)
    cached, decoded = load_features(tmp_path / "cached.h5"), load_features(tmp_path / "decoded.h5")
    for name in cached:
        np.testing.assert_array_equal(cached[name][0], decoded[name][0])
