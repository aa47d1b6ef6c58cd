"""On-disk layouts (CamVid, Cityscapes, paired folders): one class per layout knows where the images and masks of a
split are read from, and where synthesis writes its samples and how their masks are stored."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from synthlabel.data.classes import ClassInfo, ClassSpec
from synthlabel.errors import DataError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Official Cityscapes labelIds of trainIds 0..18 (cityscapesScripts labels.py); every other labelId is ignored (255).
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
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

Pairs = tuple[list[tuple[Path, Path | None]], list[Path]]  # (image, mask or None) pairs, and masks without an image


def cityscapes_spec() -> ClassSpec:
    return ClassSpec(tuple(ClassInfo(i, n, c) for i, (n, c) in enumerate(CITYSCAPES_CLASSES)), ignore_index=255)


def cityscapes_lut() -> np.ndarray:
    """[256] labelId -> trainId (255 for labelIds that are not trained on)."""
    lut = np.full(256, 255, dtype=np.int64)
    lut[list(CITYSCAPES_LABEL_IDS)] = np.arange(len(CITYSCAPES_LABEL_IDS))
    return lut


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder (by extension, hidden files skipped), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))


class Layout:
    """How one layout reads (splits, image/mask pairs, metadata from paths) and writes (sample paths, masks).

    Masks hold class ids as 8-bit values unless a layout says otherwise; synthetic samples are named by a running
    index (`synth_000000`), never by their condition."""

    name: str
    default_spec: ClassSpec | None = None  # the label set when the dataset has no classes.json
    raw_to_id: np.ndarray | None = None  # [256] raw mask value -> class id, unless the caller names a class spec

    def splits(self, root: Path) -> list[str]:
        """Names of the splits present under root."""
        raise NotImplementedError

    def pairs(self, root: Path, split: str) -> Pairs:
        raise NotImplementedError

    def default_meta(self, image: Path) -> dict:
        """Metadata derivable from the path alone (overridden by a meta CSV)."""
        return {}

    def sample_paths(self, out_dir: Path, split: str, index: int) -> tuple[Path, Path]:
        """(image path, mask path) of synthetic sample `index` of `split`."""
        raise NotImplementedError

    def check_spec(self, spec: ClassSpec) -> None:
        """Raise DataError when masks of this label set cannot be written in this layout."""

    def encode_mask(self, label_map: np.ndarray) -> np.ndarray:
        """[H, W] class ids (ignore index as is) -> the 8-bit mask written to disk."""
        return label_map.astype(np.uint8)


class CamVid(Layout):
    """`<split>/` images beside `<split>annot/` masks of the same file name; `seq_frame.png` names give metadata."""

    name = "camvid"

    def splits(self, root: Path) -> list[str]:
        found = [p.name for p in sorted(root.iterdir()) if p.is_dir() and (root / f"{p.name}annot").is_dir()]
        order = {"train": 0, "val": 1, "test": 2}
        return sorted(found, key=lambda s: (order.get(s, 3), s))

    def pairs(self, root: Path, split: str) -> Pairs:
        return _match(list_images(_dir(root / split)), list_images(_dir(root / f"{split}annot")), lambda p: p.name)

    def default_meta(self, image: Path) -> dict:
        seq, sep, frame = image.stem.partition("_")
        return {"sequence": seq, "frame": frame} if sep else {}

    def sample_paths(self, out_dir: Path, split: str, index: int) -> tuple[Path, Path]:
        name = f"synth_{index:06d}.png"
        return out_dir / split / name, out_dir / f"{split}annot" / name


class Folders(Layout):
    """`images/<split>/` and `masks/<split>/` paired by file stem; without split folders, one pool named 'all'."""

    name = "folders"

    def splits(self, root: Path) -> list[str]:
        return [p.name for p in sorted((root / "images").iterdir()) if p.is_dir()] or ["all"]

    def pairs(self, root: Path, split: str) -> Pairs:
        images, masks = (root / d if split == "all" else root / d / split for d in ("images", "masks"))
        return _match(list_images(_dir(images)), list_images(_dir(masks)), lambda p: p.stem)

    def sample_paths(self, out_dir: Path, split: str, index: int) -> tuple[Path, Path]:
        name = f"synth_{index:06d}.png"
        return out_dir / "images" / split / name, out_dir / "masks" / split / name


class Cityscapes(Layout):
    """`leftImg8bit/<split>/<city>/*_leftImg8bit.png` + `gtFine/<split>/<city>/*_gtFine_labelIds.png`: masks hold
    Cityscapes labelIds, read as the 19 trainIds and written back as labelIds."""

    name = "cityscapes"
    default_spec = cityscapes_spec()
    raw_to_id = cityscapes_lut()

    def splits(self, root: Path) -> list[str]:
        return sorted(p.name for p in (root / "leftImg8bit").iterdir() if p.is_dir())

    def pairs(self, root: Path, split: str) -> Pairs:
        images = sorted(_dir(root / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        masks = sorted(_dir(root / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
        return _match(images, masks, _cityscapes_key)

    def default_meta(self, image: Path) -> dict:
        parts = image.name.split("_")
        return {"sequence": f"{parts[0]}_{parts[1]}", "frame": parts[2] if len(parts) > 3 else ""}

    def sample_paths(self, out_dir: Path, split: str, index: int) -> tuple[Path, Path]:
        stem = f"{split}/synth/synth_{index:06d}_000019"  # city "synth", frame 19 as in gtFine
        return out_dir / "leftImg8bit" / f"{stem}_leftImg8bit.png", out_dir / "gtFine" / f"{stem}_gtFine_labelIds.png"

    def check_spec(self, spec: ClassSpec) -> None:
        if spec.names != self.default_spec.names:
            raise DataError(
                "the cityscapes layout stores Cityscapes labelIds; it needs the 19 Cityscapes classes. "
                "Write layout 'camvid' or 'folders' instead"
            )

    def encode_mask(self, label_map: np.ndarray) -> np.ndarray:
        lut = np.zeros(256, np.uint8)  # the ignore index and anything else -> labelId 0 (unlabeled)
        lut[: len(CITYSCAPES_LABEL_IDS)] = CITYSCAPES_LABEL_IDS
        return lut[label_map]


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (CamVid(), Cityscapes(), Folders())}


def get(name: str) -> Layout:
    """The layout named `name`."""
    if name not in LAYOUTS:
        raise DataError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def _cityscapes_key(path: Path) -> str:
    stem = path.name.replace("_leftImg8bit.png", "").replace("_gtFine_labelIds.png", "")
    return f"{path.parent.name}/{stem}"


def _dir(path: Path) -> Path:
    if not path.is_dir():
        raise DataError(f"{path}: folder not found; check the dataset path and layout (see docs/data.md)")
    return path


def _match(images: list[Path], masks: list[Path], key: Callable[[Path], str]) -> Pairs:
    by_key = {key(m): m for m in masks}
    image_keys = {key(i) for i in images}
    return [(i, by_key.get(key(i))) for i in images], [m for k, m in by_key.items() if k not in image_keys]


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
