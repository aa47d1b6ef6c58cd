"""Readers for labeled segmentation data on disk (CamVid, Cityscapes, paired folders) with validation: every error
names the file and the fix, and `check_dataset` collects all problems instead of stopping at the first."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from synthlabel.data import layouts
from synthlabel.data.classes import ClassMap, ClassSpec
from synthlabel.data.sample import Sample, TensorSet, to_float
from synthlabel.errors import DataError
from synthlabel.runs import progress

LISTED = "@"  # split "train@list.txt": the images of split train named in a split file (one file name a line)


@dataclass(frozen=True)
class Record:
    """Where one sample lives on disk, and its metadata."""

    image: Path
    mask: Path
    meta: dict = field(default_factory=dict)


@dataclass
class SegDataset:
    """One split of a labeled dataset: records + class spec + how raw mask values become class ids."""

    root: Path
    split: str
    layout: str
    spec: ClassSpec
    records: list[Record]
    raw_to_id: np.ndarray | None = None  # [256] lookup applied to raw mask values (e.g. Cityscapes id -> trainId)
    class_map: ClassMap | None = None  # harmonization into another label set, applied last

    def __len__(self) -> int:
        return len(self.records)

    @property
    def out_spec(self) -> ClassSpec:
        """The label set of what this dataset yields (the class map's target if one is applied)."""
        return self.class_map.target if self.class_map else self.spec

    def read(self, index: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image [H, W, 3] uint8, label [H, W] int64) for record `index`, optionally resized to size=(H, W)."""
        rec = self.records[index]
        image = _open_image(rec.image, "RGB")
        mask = _open_image(rec.mask, None)
        if image.size != mask.size:
            raise DataError(
                f"{rec.mask}: mask is {mask.size[0]}x{mask.size[1]} but image {rec.image.name} is "
                f"{image.size[0]}x{image.size[1]} (WxH); re-export the mask at the image size"
            )
        if size is not None and (image.size[1], image.size[0]) != tuple(size):
            image = image.resize((size[1], size[0]), Image.BILINEAR, reducing_gap=None)
            mask = mask.resize((size[1], size[0]), Image.NEAREST)
        return np.array(image, dtype=np.uint8), self._decode_mask(mask, rec.mask)  # writable copy

    def read_label(self, index: int) -> np.ndarray:
        """The label map [H, W] int64 of record `index` at native size, without decoding the image."""
        path = self.records[index].mask
        return self._decode_mask(_open_image(path, None), path)

    def __getitem__(self, index: int) -> Sample:
        image, label = self.read(index)
        return Sample(
            to_float(torch.from_numpy(image).permute(2, 0, 1)), torch.from_numpy(label), dict(self.records[index].meta)
        )

    def _decode_mask(self, mask: Image.Image, path: Path) -> np.ndarray:
        if mask.mode in ("RGB", "RGBA"):
            ids = self.spec.decode_colors(np.asarray(mask.convert("RGB")), source=str(path))
        elif mask.mode in ("L", "P", "I;16", "I"):
            ids = np.asarray(mask, dtype=np.int64)
            if self.raw_to_id is not None:
                ids = self.raw_to_id[np.clip(ids, 0, 255)]
            else:  # classes.json ids that are not 0..K-1 (e.g. 0, 7) are mask values: map them
                ids = self.spec.from_raw(ids, str(path))
        else:
            raise DataError(f"{path}: mask mode {mask.mode} not supported; save masks as 8-bit ids or RGB colors")
        bad = (ids >= self.spec.num_classes) & (ids != self.spec.ignore_id) | (ids < 0)
        if bad.any():
            found = sorted(set(np.unique(ids[bad]).tolist()))[:5]
            raise DataError(
                f"{path}: class ids {found} are outside the class spec (0..{self.spec.num_classes - 1}, "
                f"ignore {self.spec.ignore_index}); fix the mask or add the classes to classes.json"
            )
        return self.class_map(ids) if self.class_map else ids

    def subset(self, indices: list[int]) -> SegDataset:
        return replace(self, records=[self.records[i] for i in indices])

    def indices_of(self, names: Sequence[str], source: Path) -> list[int]:
        """Sorted indices of the records whose image file is named in `names` (read from split file `source`)."""
        index = {r.image.name: i for i, r in enumerate(self.records)}
        missing = [n for n in names if n not in index]
        if missing:
            raise DataError(
                f"{source}: {len(missing)} listed files are not in split '{self.split}' "
                f"(first: {missing[0]}); regenerate the split file for this dataset"
            )
        return sorted(index[n] for n in names)

    def load(self, size: tuple[int, int] | None = None, desc: str | None = None) -> TensorSet:
        """All samples in memory as a TensorSet at size=(H, W) (native size if None; all images must match)."""
        images, labels = [], []
        for i in progress(range(len(self)), desc=desc or f"load {self.split}", total=len(self)):
            image, label = self.read(i, size)
            if images and image.shape != images[0].shape:
                raise DataError(
                    f"{self.records[i].image}: size {image.shape[:2]} differs from the first image "
                    f"{images[0].shape[:2]}; pass a working size (data.size) to resize all images"
                )
            images.append(image)
            labels.append(label)
        if not images:
            raise DataError(f"{self.root}: split '{self.split}' is empty")
        return TensorSet(
            torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
            torch.from_numpy(np.stack(labels)),
            [dict(r.meta) for r in self.records],
        )


def _open_image(path: Path, mode: str | None) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: corrupt or not an image file ({exc}); replace or remove it") from exc
    except Image.DecompressionBombError as exc:  # a tiny file that would decode to gigabytes
        raise DataError(f"{path}: image too large to decode safely ({exc}); resize or remove it") from exc
    return img.convert(mode) if mode and img.mode != mode else img


def read_rgb(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB (bilinear to size=(H, W) when given); a named DataError if unreadable."""
    image = _open_image(Path(path), "RGB")
    if size is not None and (image.size[1], image.size[0]) != tuple(size):
        image = image.resize((size[1], size[0]), Image.BILINEAR, reducing_gap=None)
    return np.array(image, dtype=np.uint8)


def detect_format(root: Path) -> str:
    """Guess the layout of a dataset folder."""
    if (root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir():
        return "cityscapes"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "folders"
    if any((root / f"{s}annot").is_dir() for s in ("train", "val", "test")):
        return "camvid"
    raise DataError(
        f"{root}: unknown dataset layout; expected CamVid (train/ trainannot/ ...), Cityscapes "
        "(leftImg8bit/ gtFine/) or paired folders (images/ masks/); see docs/data.md"
    )


def _layout(root: Path, name: str) -> layouts.Layout:
    """The layout `name`, or the one detected under root for 'auto'."""
    name = detect_format(root) if name == "auto" else name
    if name not in layouts.LAYOUTS:
        raise DataError(f"unknown layout {name!r}; choose one of {', '.join(layouts.LAYOUTS)} or auto")
    return layouts.LAYOUTS[name]


def _find_spec(root: Path, layout: layouts.Layout, class_spec: ClassSpec | str | Path | None) -> ClassSpec:
    if isinstance(class_spec, ClassSpec):
        return class_spec
    if class_spec is not None:
        return ClassSpec.load(class_spec)
    if (root / "classes.json").is_file():
        return ClassSpec.load(root / "classes.json")
    if layout.default_spec is not None:
        return layout.default_spec
    raise DataError(
        f"{root}: no classes.json; write one (ids, names, colors, ignore_index; see docs/data.md) or pass class_spec"
    )


def list_splits(root: str | Path, layout: str = "auto") -> list[str]:
    root = _root(root)
    return _layout(root, layout).splits(root)


def parse_split(split: str) -> tuple[str, Path | None]:
    """'train@runs/x/val.txt' -> ('train', Path('runs/x/val.txt')); a plain split name -> (name, None)."""
    name, sep, listed = split.partition(LISTED)
    return name, (Path(listed) if sep else None)


def has_split(root: str | Path, split: str, layout: str = "auto") -> bool:
    """Whether `split` (a split name, or `name@file`) is in the dataset. A plain name must match exactly, so a missing
    'val' is not taken for the unsplit images/ + masks/ pool that `open_dataset` falls back to."""
    name, listed = parse_split(split)
    found = list_splits(root, layout)
    return name in found or (listed is not None and found == ["all"])


def read_split_names(path: str | Path) -> list[str]:
    """The file names listed in a split file: one a line, blank lines and `#` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found; create it with `synthlabel subset`")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not names:
        raise DataError(f"{path}: split file is empty")
    return names


def _root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; check the path")
    return root


def open_dataset(
    root: str | Path,
    split: str = "train",
    layout: str = "auto",
    class_spec: ClassSpec | str | Path | None = None,
    class_map: str | Path | ClassMap | None = None,
    meta_csv: str | Path | None = "auto",
) -> SegDataset:
    """Open one split of a labeled dataset; `split` may be `name@file` (only the images named in that split file).
    Pairing, metadata and conditions are checked here; pixel content (size match, class ids, corrupt files) is
    checked when a sample is read (all at once by `check_dataset`)."""
    root, requested = _root(root), split
    split, listed = parse_split(split)
    layout = _layout(root, layout)
    spec = _find_spec(root, layout, class_spec)
    available = layout.splits(root)
    if available == ["all"]:  # images/ + masks/ without split folders: one pool, whatever the split is called
        split = "all"
    if split not in available:
        raise DataError(f"{root}: no split '{split}' (found: {', '.join(available) or 'none'})")
    meta = _meta_table(root, meta_csv)
    records = [
        Record(img, mask, _meta_for(layout, split, img, spec, meta)) for img, mask in _pairs(root, layout, split)
    ]
    if isinstance(class_map, (str, Path)):
        class_map = ClassMap.from_yaml(class_map, spec)
    raw_to_id = layout.raw_to_id if class_spec is None else None
    dataset = SegDataset(root, split, layout.name, spec, records, raw_to_id, class_map)
    if listed is None:
        return dataset
    return replace(dataset.subset(dataset.indices_of(read_split_names(listed), listed)), split=requested)


def _pairs(root: Path, layout: layouts.Layout, split: str) -> list[tuple[Path, Path]]:
    """(image, mask) of every image of a split; an image without mask or an empty split is an error."""
    found, _ = layout.pairs(root, split)
    missing = [img for img, mask in found if mask is None]
    if missing:
        raise DataError(
            f"{missing[0]}: image without mask ({len(missing)} in split '{split}'); add the mask "
            f"with the same file name or remove the image"
        )
    if not found:
        raise DataError(
            f"{root}: split '{split}' is empty (no images found); put images with extensions "
            f"{', '.join(layouts.IMAGE_EXTS)} in it or drop the split"
        )
    return found


def _meta_table(root: Path, meta_csv: str | Path | None) -> dict:
    if meta_csv == "auto":
        meta_csv = root / "meta.csv" if (root / "meta.csv").is_file() else None
    return layouts.read_meta_csv(Path(meta_csv)) if meta_csv else {}


def _meta_for(layout: layouts.Layout, split: str, image: Path, spec: ClassSpec, table: dict) -> dict:
    meta = {"file": image.name, "split": split, **layout.default_meta(image)}
    meta.update(table.get((split, image.name)) or table.get(("", image.name)) or {})
    if not meta.get("condition") and meta.get("sequence") in spec.condition_of_sequence:
        meta["condition"] = spec.condition_of_sequence[meta["sequence"]]
    cond = meta.get("condition")
    if cond and spec.conditions and cond not in spec.conditions:
        raise DataError(
            f"{image}: unknown condition {cond!r} (known: {', '.join(spec.conditions)}); add it to "
            "'conditions' in classes.json or fix the metadata CSV"
        )
    return meta


@dataclass
class DataReport:
    """What `check_dataset` found: counts per split and condition, pixel fractions, and every problem."""

    root: Path
    layout: str
    spec: ClassSpec | None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> condition -> images
    pixel_fraction: dict[str, list[float]] = field(default_factory=dict)  # split -> [K+1] (last: ignore)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(
    root: str | Path,
    layout: str = "auto",
    class_spec: ClassSpec | str | Path | None = None,
    class_map: str | Path | None = None,
    meta_csv: str | Path | None = "auto",
) -> DataReport:
    """Read every sample of every split; collect counts, class pixel fractions and all problems found."""
    try:
        root = _root(root)
        lay = _layout(root, layout)
        layout = lay.name
        report = DataReport(root, layout, _find_spec(root, lay, class_spec))
        split_names = lay.splits(root)
    except DataError as exc:
        return DataReport(Path(root), layout, None, problems=[str(exc)])
    if not split_names:
        report.problems.append(f"{root}: no splits found")
    for split in split_names:
        _check_split(report, split, class_spec, class_map, meta_csv)
    return report


def _check_split(report: DataReport, split: str, class_spec, class_map, meta_csv) -> None:
    try:
        # Pass the caller's class_spec, not report.spec: open_dataset maps Cityscapes labelIds only when it is None.
        ds = open_dataset(report.root, split, report.layout, class_spec, class_map, meta_csv)
    except DataError as exc:
        report.problems.append(str(exc))
        return
    orphans = layouts.LAYOUTS[report.layout].pairs(report.root, ds.split)[1]
    report.problems += [f"{m}: mask without image in split '{split}'; add its image or remove it" for m in orphans]
    k = ds.out_spec.num_classes
    counts = np.zeros(k + 1, dtype=np.int64)
    conds: Counter[str] = Counter()
    for i in progress(range(len(ds)), desc=f"check {split}", total=len(ds)):
        try:
            _, label = ds.read(i)
        except DataError as exc:
            report.problems.append(str(exc))
            continue
        counts += np.bincount(np.where((label >= 0) & (label < k), label, k).ravel(), minlength=k + 1)  # k: ignore
        conds[ds.records[i].meta.get("condition") or "unknown"] += 1
    report.counts[split] = dict(conds)
    report.pixel_fraction[split] = (counts / max(counts.sum(), 1)).tolist()
