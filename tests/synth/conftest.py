"""Shared fixtures for the label-map synthesis tests: ~30 small procedural demo scenes and their class bank."""

from __future__ import annotations

import numpy as np
import pytest

from synthlabel.data.toy import demo_spec, sample_scene
from synthlabel.synth.class_bank import ClassBank

SIZE = (64, 96)


@pytest.fixture(scope="session")
def spec():
    return demo_spec()


@pytest.fixture(scope="session")
def demo_maps() -> list[np.ndarray]:
    """30 demo label maps [64, 96] int64 (pedestrians and poles are rare: under 1% of pixels each)."""
    return [sample_scene(seed, SIZE).label for seed in range(30)]


@pytest.fixture(scope="session")
def demo_bank(demo_maps, spec) -> ClassBank:
    return ClassBank.build(demo_maps, spec)
