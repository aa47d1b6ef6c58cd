"""Every error a user can cause in a dataset names the file and the fix, is collected by `check_dataset`, and
leaves the dataset folder untouched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthlabel.data.datasets import check_dataset, open_dataset
from synthlabel.errors import DataError


@dataclass
class Case:
    """A clean dataset, one way to break it, and what the error message must contain."""

    make: str  # "camvid" or "palette"
    breaks: Callable  # (root, fake_data) -> list of fragments the message must contain
    split: str = "train"
    class_map: bool = False  # pass root.parent / "map.yaml" as class_map


def _make(kind: str, root: Path, fake_data) -> Path:
    return fake_data.camvid(root) if kind == "camvid" else fake_data.folders(root, palette=True)


def _first_mask(root: Path) -> Path:
    return root / "trainannot" / "seqA_000001.png"


def _image_without_mask(root, fake_data):
    _first_mask(root).unlink()
    return [str(root / "train" / "seqA_000001.png"), "image without mask", "add the mask"]


def _mask_size_mismatch(root, fake_data):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(_first_mask(root))
    return [str(_first_mask(root)), "mask is 10x10", "16x12", "re-export the mask at the image size"]


def _class_id_outside_spec(root, fake_data):
    mask = np.array(Image.open(_first_mask(root)))
    mask[2, 3] = 7
    Image.fromarray(mask).save(_first_mask(root))
    return [str(_first_mask(root)), "class ids [7]", "outside the class spec", "add the classes to classes.json"]


def _corrupt_image(root, fake_data):
    path = root / "train" / "seqA_000001.png"
    path.write_bytes(b"this is not a png at all" * 10)
    return [str(path), "corrupt or not an image file", "replace or remove it"]


def _truncated_mask(root, fake_data):
    data = _first_mask(root).read_bytes()
    _first_mask(root).write_bytes(data[: len(data) // 2])
    return [str(_first_mask(root)), "corrupt or not an image file", "replace or remove it"]


def _unknown_condition(root, fake_data):
    rows = [
        {
            "split": "train",
            "file": fake_data.camvid_name(i, 4),
            "sequence": "seqA",
            "condition": "night",
            "frame": str(i),
        }
        for i in range(4)
    ]
    fake_data.write_meta_csv(root / "meta.csv", rows)
    return [
        str(root / "train" / "seqA_000000.png"),
        "unknown condition 'night'",
        "known: day, dusk",
        "add it to 'conditions' in classes.json",
    ]


def _meta_csv_without_file_column(root, fake_data):
    (root / "meta.csv").write_text("split,name,condition\ntrain,seqA_000000.png,day\n")
    return [str(root / "meta.csv"), "needs a 'file' column"]


def _empty_split(root, fake_data):
    (root / "test").mkdir()
    (root / "testannot").mkdir()
    return [str(root), "split 'test' is empty", "or drop the split"]


def _missing_classes_json(root, fake_data):
    (root / "classes.json").unlink()
    return [str(root), "no classes.json", "write one"]


def _malformed_classes_json(root, fake_data):
    (root / "classes.json").write_text("{not json")
    return [str(root / "classes.json"), "not valid JSON", "fix the file"]


def _unknown_palette_color(root, fake_data):
    path = root / "masks" / "img001.png"
    mask = np.array(Image.open(path))
    mask[5, 5] = (1, 2, 3)
    Image.fromarray(mask).save(path)
    return [str(path), "color (1, 2, 3) is not a class color", "add it to classes.json or fix the mask"]


def _unknown_class_in_map(root, fake_data):
    (root.parent / "map.yaml").write_text("mapping:\n  truck: road\n  sky: road\n")
    return [str(root.parent / "map.yaml"), "unknown class name 'truck'", "known: sky, road, car"]


def _unknown_target_id_in_map(root, fake_data):
    (root.parent / "map.yaml").write_text("mapping:\n  sky: 9\n")
    return [str(root.parent / "map.yaml"), "class id 9 is not in the spec"]


CASES = {
    "image_without_mask": Case("camvid", _image_without_mask),
    "mask_size_mismatch": Case("camvid", _mask_size_mismatch),
    "class_id_outside_spec": Case("camvid", _class_id_outside_spec),
    "corrupt_image": Case("camvid", _corrupt_image),
    "truncated_mask": Case("camvid", _truncated_mask),
    "unknown_condition": Case("camvid", _unknown_condition),
    "meta_csv_without_file_column": Case("camvid", _meta_csv_without_file_column),
    "empty_split": Case("camvid", _empty_split, split="test"),
    "missing_classes_json": Case("camvid", _missing_classes_json),
    "malformed_classes_json": Case("camvid", _malformed_classes_json),
    "unknown_palette_color": Case("palette", _unknown_palette_color, split="all"),
    "unknown_class_in_class_map": Case("camvid", _unknown_class_in_map, class_map=True),
    "unknown_target_id_in_class_map": Case("camvid", _unknown_target_id_in_map, class_map=True),
}


def _read_all(root: Path, split: str, **kwargs) -> None:
    ds = open_dataset(root, split, **kwargs)
    for i in range(len(ds)):
        ds.read(i)


@pytest.mark.parametrize("name", list(CASES))
def test_error_names_file_and_fix_and_check_collects_it(name, tmp_path, fake_data):
    case = CASES[name]
    root = _make(case.make, tmp_path / "data", fake_data)
    kwargs = {"class_map": root.parent / "map.yaml"} if case.class_map else {}
    assert check_dataset(root).ok  # the error below comes from the break, not from the fixture
    fragments = case.breaks(root, fake_data)
    before = fake_data.listing(root)

    with pytest.raises(DataError) as err:
        _read_all(root, case.split, **kwargs)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"

    report = check_dataset(root, **kwargs)
    assert not report.ok
    assert message in report.problems
    assert fake_data.listing(root) == before  # neither the reader nor the check wrote anything


def test_check_dataset_collects_every_problem_and_keeps_counting(camvid_root, fake_data):
    _class_id_outside_spec(camvid_root, fake_data)  # seqA_000001
    (camvid_root / "train" / "seqB_000003.png").write_bytes(b"garbage")
    report = check_dataset(camvid_root)
    assert len(report.problems) == 2
    assert any("seqA_000001.png: class ids [7]" in p for p in report.problems)
    assert any("seqB_000003.png: corrupt or not an image file" in p for p in report.problems)
    # the readable samples are still counted
    assert report.counts == {"train": {"day": 1, "dusk": 1}, "val": {"day": 2, "dusk": 2}}
    assert sum(report.pixel_fraction["train"]) == pytest.approx(1.0)


def test_check_dataset_on_missing_folder(tmp_path):
    report = check_dataset(tmp_path / "nope")
    assert not report.ok and report.problems == [f"{tmp_path / 'nope'}: dataset folder not found; check the path"]
    with pytest.raises(DataError, match="dataset folder not found"):
        open_dataset(tmp_path / "nope")


def test_unknown_split_lists_the_available_ones(camvid_root):
    with pytest.raises(DataError, match=r"no split 'test' \(found: train, val\)"):
        open_dataset(camvid_root, "test")
