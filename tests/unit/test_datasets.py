import json

import numpy as np
import pytest

from tests.conftest import write_csv_dataset, write_imagefolder
from transferbench.data.images import decode_images
from transferbench.data.splits import DatasetSpec, Split, make_split

pytestmark = pytest.mark.unit


def test_imagefolder_split_holds_out_stratified_val(imagefolder_split):
    spec, split, _ = imagefolder_split
    assert split.classes == ["a", "b", "c"]
    assert split.sizes() == {"train": 27, "val": 9, "test": 18}  # 25% of 12 per class held out
    assert np.bincount(split.labels["val"]).tolist() == [3, 3, 3]
    assert split.n_train == 36
    assert not set(split.ids["train"]) & set(split.ids["val"])


def test_split_uses_creators_val_folder_when_present(tmp_path):
    root = write_imagefolder(tmp_path / "d", val_per_class=4)
    split = make_split(DatasetSpec("d", "imagefolder", "top1", str(root)), seed=0)
    assert split.sizes() == {"train": 36, "val": 12, "test": 18}
    assert all(i.startswith("val/") for i in split.ids["val"])


def test_split_is_seeded_and_hash_detects_corruption(imagefolder_split, tmp_path):
    spec, split, path = imagefolder_split
    assert make_split(spec, seed=0).hash == split.hash
    assert make_split(spec, seed=1).hash != split.hash
    data = json.loads(path.read_text())
    data["labels"]["test"][0] = 2 - data["labels"]["test"][0]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="corrupt"):
        Split.load(path)


def test_missing_folder_names_path_and_layout(tmp_path):
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"missing folder .*test.*expected .*train/<class>/<image>"):
        make_split(DatasetSpec("d", "imagefolder", "top1", str(tmp_path / "d")), seed=0)


def test_digits_split_is_stratified_and_complete():
    split = make_split(DatasetSpec("digits", "sklearn_digits", "top1", test_fraction=0.3, val_fraction=0.2), seed=0)
    sizes = split.sizes()
    assert sum(sizes.values()) == 1797
    assert sorted(split.ids["train"] + split.ids["val"] + split.ids["test"]) == list(range(1797))
    assert 0.28 < sizes["test"] / 1797 < 0.32


def test_decode_resizes_shorter_side_and_centre_crops(imagefolder_split):
    spec, split, _ = imagefolder_split
    images = decode_images(spec, split.ids["test"][:4], size=16, interpolation="bilinear")
    assert images.shape == (4, 3, 16, 16) and images.dtype.__str__() == "torch.uint8"


def test_corrupt_image_error_names_the_file(imagefolder_split):
    spec, split, _ = imagefolder_split
    bad = f"{spec.root}/{split.ids['test'][0]}"
    open(bad, "wb").write(b"not a jpeg")
    with pytest.raises(OSError, match="cannot decode image .*" + split.ids["test"][0]):
        decode_images(spec, split.ids["test"][:1], size=16, interpolation="bilinear")


def test_csv_split_file_gives_the_listed_splits(tmp_path):
    split = make_split(write_csv_dataset(tmp_path, with_val=True), seed=0)
    assert split.classes == ["a", "b", "c"] and split.sizes() == {"train": 24, "val": 6, "test": 12}
    assert all(path.startswith("train/") for path in split.ids["train"])


def test_csv_split_file_without_val_holds_out_a_stratified_val(tmp_path):
    split = make_split(write_csv_dataset(tmp_path), seed=0)
    assert split.sizes() == {"train": 18, "val": 6, "test": 12}
    assert sorted(np.bincount(split.labels["val"])) == [2, 2, 2]


def test_csv_split_file_errors_name_the_problem(tmp_path):
    spec = write_csv_dataset(tmp_path)
    path = tmp_path / "split.csv"
    text = path.read_text()
    path.write_text(text.replace(",test\n", ",tset\n", 1))
    with pytest.raises(ValueError, match=r"split.csv, line \d+: split 'tset'; expected train, val or test"):
        make_split(spec, seed=0)
    path.write_text(text.replace("path,label,split", "file,label,split"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['path'\]"):
        make_split(spec, seed=0)
    path.write_text(text + "train/a/gone.jpg,a,train\n")
    with pytest.raises(FileNotFoundError, match="1 listed image.*gone.jpg"):
        make_split(spec, seed=0)
