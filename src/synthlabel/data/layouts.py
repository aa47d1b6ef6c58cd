"""On-disk layouts: where images and masks of each split live (CamVid, Cityscapes, paired folders)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from synthlabel.data.classes import ClassInfo, ClassSpec
from synthlabel.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Official Cityscapes labelIds -> trainIds (cityscapesScripts labels.py); everything else is ignored (255).
CITYSCAPES_TRAIN_IDS = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
CITYSCAPES_CLASSES = [
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
]


def cityscapes_spec() -> ClassSpec:
    return ClassSpec(tuple(ClassInfo(i, n, c) for i, (n, c) in enumerate(CITYSCAPES_CLASSES)), ignore_index=255)


def cityscapes_lut() -> np.ndarray:
    lut = np.full(256, 255, dtype=np.int64)
    for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
        lut[label_id] = train_id
    return lut


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder (by extension, hidden files skipped), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


def splits(root: Path, layout: str) -> list[str]:
    """Names of the splits present under root."""
    if layout == "camvid":
        found = [p.name for p in sorted(root.iterdir()) if p.is_dir() and (root / f"{p.name}annot").is_dir()]
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(found, key=lambda s: (order.get(s, 3), s))
    if layout == "cityscapes":
        return sorted(p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir())
    if layout == "folders":
        sub = [p.name for p in sorted((root / "images").iterdir()) if p.is_dir()]
        return sub or ["all"]
    raise DataError(f"unknown layout {layout!r}")


def pairs(root: Path, layout: str, split: str) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """(image, mask or None) pairs of a split, and masks that have no image."""
    if layout == "camvid":
        return _match(list_images(_dir(root / split)), list_images(_dir(root / f"{split}annot")), lambda p: p.name)
    if layout == "folders":
        img_dir = root / "images" if split == "all" else root / "images" / split
        mask_dir = root / "masks" if split == "all" else root / "masks" / split
        return _match(list_images(_dir(img_dir)), list_images(_dir(mask_dir)), lambda p: p.stem)
    if layout == "cityscapes":
        images = sorted(_dir(root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        masks = sorted(_dir(root / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
        return _match(images, masks, _cityscapes_key)
    raise DataError(f"unknown layout {layout!r}")


def _cityscapes_key(path: Path) -> str:
    stem = path.name.replace("_leftImg8bit.png", "").replace("_gtFine_labelIds.png", "")
    return f"{path.parent.name}/{stem}"


def _dir(path: Path) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: folder not found; check the dataset path and layout (see docs/data.md)")
    return path


def _match(images: list[Path], masks: list[Path], key) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    by_key = {key(m): m for m in masks}
    image_keys = {key(i) for i in images}
    return [(i, by_key.get(key(i))) for i in images], [m for k, m in by_key.items() if k not in image_keys]


def default_meta(layout: str, image: Path) -> dict:
    """Metadata derivable from the path alone (overridden by a meta CSV)."""
    if layout == "cityscapes":
        parts = image.name.split("_")
        return {"sequence": f"{parts[0]}_{parts[1]}", "frame": parts[2] if len(parts) > 3 else ""}
    if layout == "camvid" and "_" in image.stem:
        seq, frame = image.stem.split("_", 1)
        return {"sequence": seq, "frame": frame}
    return {}


def read_meta_csv(path: Path) -> dict[tuple[str, str], dict]:
    """meta.csv rows keyed by (split or '', file name); needs a 'file' column."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read metadata CSV ({exc}); fix the file") from exc
    if rows and "file" not in rows[0]:
        raise DataError(f"{path}: metadata CSV needs a 'file' column (image file name); found {list(rows[0])}")
    return {
        (r.get("split", "") or "", r["file"]): {k: v for k, v in r.items() if k not in ("split", "file")} for r in rows
    }
