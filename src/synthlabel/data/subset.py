"""Deterministic subsets drawn by seed and saved as split files: low-shot training sets (N labeled images of a split)
and a validation part carved from train when a dataset has no validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthlabel.checkpoint import atomic_write_text
from synthlabel.data.datasets import LISTED, SegDataset, parse_split, read_split_names
from synthlabel.errors import DataError


def lowshot_indices(num_items: int, n: int, seed: int) -> list[int]:
    """n distinct indices of range(num_items), drawn by seed, sorted. Subsets of one seed are nested: the first
    25 of the permutation are inside the first 50, so results across N vary only by the amount of data."""
    if n > num_items:
        raise DataError(f"asked for {n} images but the split has only {num_items}; lower data.subset.n")
    perm = np.random.default_rng(seed).permutation(num_items)
    return sorted(int(i) for i in perm[:n])


def write_split_file(path: str | Path, dataset: SegDataset, indices: list[int]) -> Path:
    path = Path(path)
    atomic_write_text(path, "".join(dataset.records[i].image.name + "\n" for i in indices))
    return path


def read_split_file(path: str | Path, dataset: SegDataset) -> list[int]:
    """Indices of the files listed in a split file (one file name per line); unknown names are errors."""
    return dataset.indices_of(read_split_names(path), Path(path))


def carve_validation(
    dataset: SegDataset, out_dir: str | Path, fraction: float, min_count: int, seed: int
) -> tuple[str, str]:
    """Hold out max(min_count, round(fraction x N)) images of a train split, drawn by seed, as validation.

    Writes split files `val.txt` (held out) and `train.txt` (the rest) into out_dir; returns the split names that
    open them, (train, val), e.g. ('train@out_dir/train.txt', 'train@out_dir/val.txt')."""
    n = max(min_count, round(fraction * len(dataset)))
    if n >= len(dataset):
        raise DataError(
            f"{dataset.root}: no validation split, and split '{dataset.split}' has {len(dataset)} images, too few to "
            f"hold out {n} for validation and train on the rest; add a validation split or more training images"
        )
    held = lowshot_indices(len(dataset), n, seed)
    rest = sorted(set(range(len(dataset))) - set(held))
    name = parse_split(dataset.split)[0]
    train = write_split_file(Path(out_dir) / "train.txt", dataset, rest)
    val = write_split_file(Path(out_dir) / "val.txt", dataset, held)
    return f"{name}{LISTED}{train}", f"{name}{LISTED}{val}"
