"""Deterministic low-shot subsets and split files."""

import pytest

from synthlabel.data.datasets import has_split, open_dataset
from synthlabel.data.subset import carve_validation, lowshot_indices, read_split_file, write_split_file
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


def test_carved_validation_is_seeded_disjoint_and_opens_as_splits(demo_root, tmp_path):
    train = open_dataset(demo_root, "train")  # 8 images
    train_split, val_split = carve_validation(train, tmp_path / "holdout", fraction=0.3, min_count=2, seed=5)
    assert train_split == f"train@{tmp_path / 'holdout' / 'train.txt'}"
    assert val_split == f"train@{tmp_path / 'holdout' / 'val.txt'}"
    rest, val = open_dataset(demo_root, train_split), open_dataset(demo_root, val_split)
    val_names = [r.image.name for r in val.records]
    assert len(val) == 2 and len(rest) == 6  # max(2, round(0.3 x 8))
    assert sorted(val_names + [r.image.name for r in rest.records]) == [r.image.name for r in train.records]
    assert val_names == [train.records[i].image.name for i in lowshot_indices(8, 2, seed=5)]
    assert val.split == val_split and {r.meta["split"] for r in val.records} == {"train"}  # meta.csv rows of train
    assert has_split(demo_root, val_split) and not has_split(demo_root, "nope@x.txt")
    again = carve_validation(train, tmp_path / "again", fraction=0.3, min_count=2, seed=5)
    assert (tmp_path / "again" / "val.txt").read_text() == (tmp_path / "holdout" / "val.txt").read_text()
    assert again != (train_split, val_split)  # other folder, same images
    with pytest.raises(DataError, match="too few to hold out 8"):
        carve_validation(train, tmp_path / "x", fraction=0.5, min_count=8, seed=0)
    assert not (tmp_path / "x").exists()


def test_has_split_matches_exact_names_only(folders_root, demo_root):
    assert has_split(demo_root, "val") and not has_split(demo_root, "valid")
    # an unsplit images/ + masks/ pool opens under any split name, but it has no validation split
    assert open_dataset(folders_root, "val").split == "all" and not has_split(folders_root, "val")
    assert has_split(folders_root, "all") and has_split(folders_root, "train@list.txt")
