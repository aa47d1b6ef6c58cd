"""Shared test setup: offline mode, and tiny generated datasets in each supported on-disk layout.

The `make_*` helpers write a dataset under a folder and return its root; the `fake_data` fixture hands them to
tests that need a variant (more images, other sizes, a broken file). Every image encodes its label map (each
class is one constant color), so a test can check pixels against labels after any transform.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from synthlabel.config import PipelineConfig, load_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Small label set shared by the generated datasets: 3 classes + one void label.
CLASS_NAMES = ("sky", "road", "car")
CLASS_COLORS = ((70, 130, 180), (128, 64, 128), (0, 0, 142))
VOID_COLOR = (0, 0, 0)
CAMVID_VOID = 3  # CamVid-style: the void id directly follows the classes
CONDITION_OF_SEQUENCE = {"seqA": "day", "seqB": "dusk"}

# Cityscapes raw labelIds used by the fixture, and the trainIds they must become.
CITYSCAPES_RAW = (7, 26, 0, 24)  # road, car, unlabeled, person
CITYSCAPES_TRAIN = (0, 13, 255, 11)


def label_pattern(size: tuple[int, int], index: int, values: tuple[int, ...] = (0, 1, 2, 3)) -> np.ndarray:
    """[H, W] int64 label map of 4x4 blocks cycling through `values` (shifted per image index)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    return np.asarray(values, dtype=np.int64)[(yy // 4 + xx // 4 + index) % len(values)]


def color_image(label_map: np.ndarray, colors: tuple[tuple[int, int, int], ...] = CLASS_COLORS + (VOID_COLOR,)):
    """[H, W] ids 0..len(colors)-1 -> [H, W, 3] uint8 image where each class is its own constant color."""
    return np.asarray(colors, dtype=np.uint8)[label_map]


def class_spec_json(ignore_index: int, conditions: dict | None = None) -> dict:
    classes = [
        {"id": i, "name": n, "color_rgb": list(c)}
        for i, (n, c) in enumerate(zip(CLASS_NAMES, CLASS_COLORS, strict=True))
    ]
    classes.append({"id": ignore_index, "name": "void", "color_rgb": list(VOID_COLOR), "void": True})
    data = {"num_classes": len(CLASS_NAMES), "ignore_index": ignore_index, "classes": classes}
    if conditions is not None:
        data["conditions"] = conditions
    return data


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def camvid_name(index: int, n: int) -> str:
    """File name of image `index` of `n`: the first half is sequence seqA (day), the rest seqB (dusk), so the
    sorted file names keep the index order."""
    return f"{'seqA' if index < (n + 1) // 2 else 'seqB'}_{index:06d}.png"


def make_camvid(
    root: Path,
    n: int = 4,
    size: tuple[int, int] = (12, 16),
    splits: tuple[str, ...] = ("train", "val"),
    meta: bool = True,
) -> Path:
    """CamVid layout: <split>/ + <split>annot/ (8-bit ids, void 3), classes.json with conditions, meta.csv."""
    root.mkdir(parents=True, exist_ok=True)
    conditions = {c: [s for s, cc in CONDITION_OF_SEQUENCE.items() if cc == c] for c in ("day", "dusk")}
    (root / "classes.json").write_text(json.dumps(class_spec_json(CAMVID_VOID, conditions)))
    rows = []
    for split in splits:
        for i in range(n):
            name, label = camvid_name(i, n), label_pattern(size, i)
            _save(color_image(label), root / split / name)
            _save(label.astype(np.uint8), root / f"{split}annot" / name)
            seq, frame = name[:-4].split("_")
            rows.append(
                {"split": split, "file": name, "sequence": seq, "condition": CONDITION_OF_SEQUENCE[seq], "frame": frame}
            )
    if meta:
        write_meta_csv(root / "meta.csv", rows)
    return root


def write_meta_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["split", "file", "sequence", "condition", "frame"])
        writer.writeheader()
        writer.writerows(rows)


def make_cityscapes(
    root: Path,
    n: int = 2,
    size: tuple[int, int] = (12, 16),
    city: str = "testcity",
    splits: tuple[str, ...] = ("train", "val"),
) -> Path:
    """Cityscapes layout: leftImg8bit/<split>/<city>/..._leftImg8bit.png + gtFine/.../..._gtFine_labelIds.png."""
    for split in splits:
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            raw = label_pattern(size, i, CITYSCAPES_RAW)
            _save(color_image(label_pattern(size, i)), root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            _save(raw.astype(np.uint8), root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
    return root


def make_folders(
    root: Path,
    n: int = 3,
    size: tuple[int, int] = (12, 16),
    splits: tuple[str, ...] = (),
    palette: bool = False,
    image_ext: str = ".bmp",
) -> Path:
    """Paired folders: images/ + masks/ (optionally per split), masks as 8-bit ids (void 255) or RGB colors.

    Images use another extension than masks (lossless .bmp by default) since pairs are matched by file stem.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps(class_spec_json(255)))
    for split in splits or ("",):
        for i in range(n):
            label = label_pattern(size, i)
            _save(color_image(label), root / "images" / split / f"img{i:03d}{image_ext}")
            mask = color_image(label) if palette else label_pattern(size, i, (0, 1, 2, 255)).astype(np.uint8)
            _save(mask, root / "masks" / split / f"img{i:03d}.png")
    return root


def listing(root: Path) -> list[tuple[str, int, int]]:
    """Every path under root with its size and mtime: equal before/after means nothing was written."""
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.fixture
def fake_data() -> SimpleNamespace:
    """The dataset writers, for tests that need a variant of the default fixtures."""
    return SimpleNamespace(
        camvid=make_camvid,
        cityscapes=make_cityscapes,
        folders=make_folders,
        label_pattern=label_pattern,
        color_image=color_image,
        write_meta_csv=write_meta_csv,
        camvid_name=camvid_name,
        listing=listing,
        class_spec_json=class_spec_json,
        CLASS_NAMES=CLASS_NAMES,
        CLASS_COLORS=CLASS_COLORS,
        VOID_COLOR=VOID_COLOR,
        CAMVID_VOID=CAMVID_VOID,
        CITYSCAPES_RAW=CITYSCAPES_RAW,
        CITYSCAPES_TRAIN=CITYSCAPES_TRAIN,
    )


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    return make_camvid(tmp_path / "camvid")


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    return make_cityscapes(tmp_path / "cityscapes")


@pytest.fixture
def folders_root(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "folders")


@pytest.fixture
def folders_split_root(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "folders_split", splits=("train", "val"))


@pytest.fixture
def palette_root(tmp_path: Path) -> Path:
    return make_folders(tmp_path / "palette", palette=True)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The procedural demo dataset at a tiny size (shared, read-only for tests)."""
    from synthlabel.data.toy import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", n_train=8, n_val=4, n_test=4, size=(32, 48))


@pytest.fixture
def tiny_seg():
    """overrides(data_path, steps) for a seconds-long segmenter run on tiny data."""
    return _tiny_seg_overrides


def _tiny_seg_overrides(data_path: Path, steps: int = 4) -> list[str]:
    return [
        f"data.path={data_path}",
        "data.size=[32, 48]",
        "model.width=8",
        "model.depth=3",
        f"train.steps={steps}",
        "train.batch_size=2",
        "train.warmup_steps=1",
        "train.log_every=1",
        "train.eval_every=2",
        "train.checkpoint_every=2",
    ]


TINY_CHAIN = [
    "demo.n_train=10",
    "demo.n_test=3",
    "demo.size=[32, 48]",
    "data.size=[32, 48]",
    "model.width=8",
    "model.depth=3",
    "train.steps=2",
    "train.batch_size=2",
    "train.warmup_steps=1",
    "generator.model.width=8",
    "generator.train.steps=2",
    "generator.train.batch_size=2",
]


@pytest.fixture
def tiny_chain():
    """config(out, *overrides): `synthlabel run`'s demo config at a seconds-long size (later overrides win)."""
    demo_yaml = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    return lambda out, *overrides: load_config(PipelineConfig, demo_yaml, [f"out={out}", *TINY_CHAIN, *overrides])
