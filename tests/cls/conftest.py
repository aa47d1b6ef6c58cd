"""Tiny classification data for the cls tests: blob images whose class sets the blob's position."""

from __future__ import annotations

import numpy as np
import pytest

from synthlabel.cls.data import ClassSet, from_arrays


def blobs(per_class: int = 6, num_classes: int = 3, size: int = 8, seed: int = 0) -> ClassSet:
    """[N, 1, size, size] images: class k has a bright square at a class-specific place plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(num_classes):
        for _ in range(per_class):
            img = rng.integers(0, 40, (size, size)).astype(np.uint8)
            y, x = (k * 3) % (size - 3), (k * 5) % (size - 3)
            img[y : y + 3, x : x + 3] = 255
            images.append(img)
            labels.append(k)
    return from_arrays(np.stack(images), np.array(labels), [f"c{k}" for k in range(num_classes)])


@pytest.fixture
def blob_set() -> ClassSet:
    return blobs()


@pytest.fixture
def make_blobs():
    """The `blobs` writer, for tests that need more images, other seeds or other classes."""
    return blobs
