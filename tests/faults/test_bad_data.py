"""Bad files in a dataset folder: decompression bombs (image or mask), truncated images, masks without images, a
class spec with duplicate ids. Readers raise one DataError naming the file; check-data lists every problem, exit 2."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from synthlabel.cli import main
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import check_dataset, open_dataset
from synthlabel.errors import DataError

BOMB_SIDE = 14000  # 196 Mpx: over PIL's 2x MAX_IMAGE_PIXELS limit; ~25 KB on disk as a 1-bit PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid all-black 1-bit PNG of side x side pixels, compressed row by row (never held in memory)."""
    z, row = zlib.compressobj(9), b"\0" * (1 + (side + 7) // 8)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


@pytest.fixture
def bad_folder(tmp_path, fake_data) -> tuple[Path, dict[str, Path]]:
    """A CamVid folder holding one of each bad file (4 train images; the rest of the dataset is fine)."""
    root = fake_data.camvid(tmp_path / "ds", n=4)
    names = sorted(p.name for p in (root / "train").iterdir())
    bad = {
        "image bomb": write_bomb_png(root / "train" / names[0]),
        "mask bomb": write_bomb_png(root / "trainannot" / names[1]),
        "truncated": root / "train" / names[2],
        "orphan mask": root / "trainannot" / "orphan_000009.png",
    }
    bad["truncated"].write_bytes(bad["truncated"].read_bytes()[:40])
    bad["orphan mask"].write_bytes((root / "trainannot" / names[3]).read_bytes())
    return root, bad


def test_readers_turn_a_bomb_into_a_data_error(bad_folder):
    root, bad = bad_folder
    ds = open_dataset(root, "train")
    with pytest.raises(DataError, match=f"{bad['image bomb']}: image too large"):
        ds.read(0)
    with pytest.raises(DataError, match=f"{bad['mask bomb']}: image too large"):
        ds.read_label(1)


def test_check_data_lists_every_problem_one_line_each(bad_folder, capsys):
    root, bad = bad_folder
    report = check_dataset(root)
    assert len(report.problems) == 4
    for what, path in bad.items():
        assert sum(str(path) in p for p in report.problems) == 1, what
    assert any("mask without image" in p for p in report.problems)
    assert main(["check-data", str(root)]) == 2
    out = capsys.readouterr().out
    assert "4 problem(s) found" in out and all(f"  - {p}" in out for p in report.problems)
    assert all("\n" not in p for p in report.problems)


def test_duplicate_class_ids_name_the_classes_and_the_file(tmp_path, fake_data, capsys):
    spec = fake_data.class_spec_json(255)
    spec["classes"][2]["id"] = 1
    path = tmp_path / "classes.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(DataError, match=rf"{path}: classes 'road' and 'car' share id 1"):
        ClassSpec.load(path)
    root = fake_data.camvid(tmp_path / "ds", n=2)
    (root / "classes.json").write_text(json.dumps(spec))
    assert main(["check-data", str(root)]) == 2
    assert f"{root / 'classes.json'}: classes 'road' and 'car' share id 1" in capsys.readouterr().out
