"""Deterministic low-shot subsets and split files."""

import pytest

from synthlabel.data.datasets import open_dataset
from synthlabel.data.subset import lowshot_indices, read_split_file, write_split_file
from synthlabel.errors import DataError


def test_lowshot_is_deterministic_nested_and_distinct():
    a = lowshot_indices(100, 25, seed=3)
    assert a == lowshot_indices(100, 25, seed=3) and len(set(a)) == 25
    assert set(a) <= set(lowshot_indices(100, 50, seed=3))
    assert a != lowshot_indices(100, 25, seed=4)
    with pytest.raises(DataError, match="only 10"):
        lowshot_indices(10, 11, seed=0)


def test_split_file_round_trip(demo_root, tmp_path):
    ds = open_dataset(demo_root, "train")
    idx = lowshot_indices(len(ds), 3, seed=1)
    path = write_split_file(tmp_path / "split.txt", ds, idx)
    assert read_split_file(path, ds) == idx
    (tmp_path / "bad.txt").write_text("nope.png\n")
    with pytest.raises(DataError, match="nope.png"):
        read_split_file(tmp_path / "bad.txt", ds)
