"""Trust maps of a (synthetic) labeled dataset: one PNG per sample under `<root>/trust/<split>/<image stem>.png`,
255 where the label is trusted and 0 where it is not. Any training code can read them; synthlabel's mixing stream
turns untrusted pixels into the ignore label (`apply_trust`). Written by `synth.trust.write_trust_maps`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthlabel.data.datasets import SegDataset, parse_split
from synthlabel.errors import DataError

TRUST_DIR = "trust"
TRUSTED = 255


def trust_folder(root: str | Path, split: str) -> Path:
    return Path(root) / TRUST_DIR / parse_split(split)[0]


def trust_path(root: str | Path, split: str, image_name: str) -> Path:
    return trust_folder(root, split) / f"{Path(image_name).stem}.png"


def has_trust(dataset: SegDataset) -> bool:
    return trust_folder(dataset.root, dataset.split).is_dir()


def read_trust(path: Path, size: tuple[int, int]) -> np.ndarray:
    """[H, W] bool (True = trusted) at size (H, W), nearest-neighbour like the label maps."""
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: trust map missing; write the trust maps again (`synthlabel trust`)") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: corrupt trust map ({exc}); write the trust maps again") from exc
    if (img.size[1], img.size[0]) != tuple(size):
        img = img.resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(img.convert("L")) >= 128


def apply_trust(dataset: SegDataset, labels: torch.Tensor, indices: Sequence[int], ignore_id: int) -> float:
    """Set the untrusted pixels of `labels` [N, H, W] (records `indices` of dataset, in order) to ignore_id, in place;
    returns the share of labeled pixels that became ignored."""
    size = tuple(labels.shape[-2:])
    before = int((labels != ignore_id).sum())
    for row, i in enumerate(indices):
        path = trust_path(dataset.root, dataset.split, dataset.records[i].image.name)
        trusted = torch.from_numpy(read_trust(path, size))
        labels[row][~trusted] = ignore_id
    after = int((labels != ignore_id).sum())
    return (before - after) / max(before, 1)
