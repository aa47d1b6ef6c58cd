"""Deterministic low-shot subsets: N labeled images of a split drawn by seed, saved as a split file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthlabel.checkpoint import atomic_write_text
from synthlabel.data.datasets import SegDataset
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
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found; create it with `synthlabel subset`")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    index = {r.image.name: i for i, r in enumerate(dataset.records)}
    missing = [n for n in names if n not in index]
    if missing:
        raise DataError(
            f"{path}: {len(missing)} listed files are not in split '{dataset.split}' "
            f"(first: {missing[0]}); regenerate the split file for this dataset"
        )
    if not names:
        raise DataError(f"{path}: split file is empty")
    return sorted(index[n] for n in names)
