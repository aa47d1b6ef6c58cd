"""Classification data: exact and deterministic n-per-class subsets, splits, readers with clear errors, the
built-in sets, and the noise baseline's images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.cls import data as cdata
from synthlabel.errors import DataError


def test_per_class_subset_is_exact_deterministic_and_nested():
    labels = torch.arange(5).repeat_interleave(20)
    a = cdata.per_class_indices(labels, 4, seed=3)
    assert a == cdata.per_class_indices(labels, 4, seed=3)
    assert a != cdata.per_class_indices(labels, 4, seed=4)
    assert torch.bincount(labels[a], minlength=5).tolist() == [4] * 5
    assert len(set(a)) == 20 and a == sorted(a)
    assert set(a) <= set(cdata.per_class_indices(labels, 8, seed=3))  # more data = a superset


def test_per_class_subset_names_a_class_that_is_too_small():
    labels = torch.tensor([0, 0, 0, 1])
    with pytest.raises(DataError, match="class 1 has 1 images"):
        cdata.per_class_indices(labels, 2, seed=0)


def test_split_keeps_train_eval_and_holdout_apart(blob_set):
    big = cdata.concat([blob_set] * 4)  # 24 per class
    split = cdata.make_split(big, 3, seed=1, holdout_per_class=5, holdout_seed=9)
    held = set(cdata.per_class_indices(big.labels, 5, 9))
    assert split.train.counts() == [3, 3, 3] and len(split.evaluation) == 3 * (24 - 5 - 3)
    assert not held & set(split.train_indices)
    dev = cdata.make_split(big, 2, seed=1, holdout_per_class=5, holdout_seed=9, dev=True)
    assert set(dev.train_indices) <= held and len(dev.evaluation) == 3 * 3
    again = cdata.make_split(big, 3, seed=1, holdout_per_class=5, holdout_seed=9)
    assert again.train_indices == split.train_indices


def test_from_arrays_scales_and_validates():
    images = np.array([[[0, 16]], [[8, 4]]])  # [2, 1, 2] values 0..16
    s = cdata.from_arrays(images, np.array([0, 1]), max_value=16)
    assert s.images.dtype == torch.uint8 and s.images.shape == (2, 1, 1, 2)
    assert s.images[0, 0, 0].tolist() == [0, 255] and s.images[1, 0, 0].tolist() == [128, 64]
    with pytest.raises(DataError, match="class.*2 have no images"):
        cdata.from_arrays(images, np.array([0, 1]), ["0", "1", "2"])
    with pytest.raises(DataError, match="labels must be 2 integers"):
        cdata.from_arrays(images, np.array([0.0, 1.0]))


def _write(root, cls, name, array, mode=None):
    (root / cls).mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(root / cls / name)


def test_read_class_folders(tmp_path):
    for k, cls in enumerate(["cat", "dog"]):
        for i in range(3):
            _write(tmp_path, cls, f"{i}.png", np.full((6, 5), 40 * k + i, np.uint8))
    s = cdata.read_class_folders(tmp_path)
    assert s.class_names == ["cat", "dog"] and s.counts() == [3, 3]
    assert s.images.shape == (6, 1, 6, 5) and s.sources[0].endswith("cat/0.png")
    assert cdata.read_class_folders(tmp_path, size=(4, 4)).image_size == (4, 4)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("empty", "class folder holds no images"),
        ("size", "differs from .*set data.size"),
        ("mode", "mode RGB .*differs"),
        ("corrupt", "unreadable or not an image"),
    ],
)
def test_read_class_folders_errors_name_the_problem(tmp_path, breakage, message):
    for cls in ("a", "b"):
        _write(tmp_path, cls, "0.png", np.zeros((6, 6), np.uint8))
    if breakage == "empty":
        (tmp_path / "c").mkdir()
    elif breakage == "size":
        _write(tmp_path, "b", "1.png", np.zeros((7, 6), np.uint8))
    elif breakage == "mode":
        _write(tmp_path, "b", "1.png", np.zeros((6, 6, 3), np.uint8))
    else:
        (tmp_path / "b" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=message):
        cdata.read_class_folders(tmp_path)


def test_read_class_folders_without_classes(tmp_path):
    with pytest.raises(DataError, match="no class folders"):
        cdata.read_class_folders(tmp_path)
    with pytest.raises(DataError, match="folder not found"):
        cdata.read_class_folders(tmp_path / "missing")


def test_builtin_sets():
    d = cdata.digits()
    assert len(d) == 1797 and d.image_size == (8, 8) and d.channels == 1 and d.num_classes == 10
    assert int(d.images.max()) == 255
    m = cdata.mnist5k()
    assert len(m) == 5000 and m.image_size == (28, 28) and m.counts() == [500] * 10
    assert cdata.resize(d, (16, 16)).image_size == (16, 16)


def test_noise_images_are_what_they_say():
    n = cdata.noise_images(50, 4, 1, (16, 16), mean=0.1, std=0.3, seed=0)
    assert n.counts() == [50] * 4 and n.images.shape == (200, 1, 16, 16)
    x = n.as_float()
    assert abs(float(x.mean()) - 0.1) < 0.01 and abs(float(x.std()) - 0.3) < 0.01
    flat = x.flatten(1)
    neighbours = torch.corrcoef(torch.stack([flat[:, :-1].flatten(), flat[:, 1:].flatten()]))[0, 1]
    assert abs(float(neighbours)) < 0.05  # independent pixels
    assert torch.equal(n.images, cdata.noise_images(50, 4, 1, (16, 16), 0.1, 0.3, seed=0).images)
