"""Filters of synthetic samples: thresholds and keep fractions drop low scorers, quotas keep rare classes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import synthlabel.generators  # noqa: F401  (registers the generators)
from synthlabel import open_dataset
from synthlabel.data.subset import read_split_file
from synthlabel.data.toy import PEDESTRIAN, ROAD, SKY, demo_spec
from synthlabel.errors import DataError
from synthlabel.generators.io import save_generator
from synthlabel.registry import GENERATORS
from synthlabel.synth.filters import FILTERED_MANIFEST, KEEP_FILE, SUMMARY, filter_samples, rank, select_samples
from synthlabel.synth.synthesize import LabelSource, synthesize

SCORES = {"a.png": 0.9, "b.png": -0.2, "c.png": 0.5, "d.png": math.nan, "e.png": 0.5}


def test_threshold_and_keep_fraction_drop_low_scores():
    assert select_samples(SCORES) == set(SCORES)
    assert select_samples(SCORES, threshold=0.4) == {"a.png", "c.png", "e.png"}
    assert select_samples(SCORES, keep_fraction=0.4) == {"a.png", "c.png"}  # ceil(0.4 * 5) = 2, tie by name
    assert select_samples(SCORES, threshold=0.6, keep_fraction=0.6) == {"a.png"}
    assert rank(SCORES) == ["a.png", "c.png", "e.png", "b.png", "d.png"]  # nan last


def test_quotas_keep_the_best_samples_of_a_rare_class():
    scores = {f"s{i}.png": s for i, s in enumerate([0.9, 0.8, 0.7, 0.3, 0.2, 0.25, 0.1, math.nan])}
    rare = {"s3.png", "s4.png", "s5.png", "s6.png", "s7.png"}
    classes_of = {f: ({0, 6} if f in rare else {0}) for f in scores}
    assert select_samples(scores, threshold=0.5, classes_of=classes_of) == {"s0.png", "s1.png", "s2.png"}
    kept = select_samples(scores, threshold=0.5, quotas={6: 0.4}, classes_of=classes_of)
    assert kept == {"s0.png", "s1.png", "s2.png", "s3.png", "s5.png"}  # 0.4 * 5 = 2 rare ones, best first
    three = select_samples(scores, threshold=0.5, quotas={6: 0.5}, classes_of=classes_of)
    assert three == kept | {"s4.png"}  # ceil(0.5 * 5) = 3
    assert select_samples(scores, threshold=0.0, quotas={6: 0.5}, classes_of=classes_of) == set(scores) - {"s7.png"}
    fifty = {f"t{i:02d}.png": float(i) for i in range(50)}  # 0.14 * 50 is 7.000000000000001 in floats
    assert len(select_samples(fifty, threshold=100, quotas={0: 0.14}, classes_of={f: {0} for f in fifty})) == 7
    everything = select_samples(scores, threshold=0.5, quotas={6: 1.0, 0: 0.0}, classes_of=classes_of)
    assert everything == set(scores)
    with pytest.raises(ValueError):
        select_samples(scores, threshold=0.5, quotas={6: 0.5})


def test_selection_is_deterministic_whatever_the_order_of_the_scores():
    scores = {f"s{i:02d}.png": float(i % 3) for i in range(12)}
    shuffled = dict(reversed(list(scores.items())))
    classes_of = {f: {i % 4} for i, f in enumerate(sorted(scores))}
    args = dict(keep_fraction=0.5, quotas={3: 1.0, 1: 0.5})
    assert select_samples(scores, classes_of=classes_of, **args) == select_samples(
        shuffled, classes_of=classes_of, **args
    )
    assert rank(scores) == rank(shuffled)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    """A synthetic dataset of 6 maps x 1 render: maps 0-2 hold a pedestrian (the rare class)."""
    kwargs = dict(num_classes=8, num_conditions=4, width=8, image_size=(32, 48))
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("filters")
    gen = save_generator(root / "gen", "spade", kwargs, GENERATORS.create("spade", **kwargs), demo_spec(), ["day"])
    maps = []
    for i in range(6):
        label = np.full((32, 48), SKY, np.int64)
        label[16:] = ROAD
        if i < 3:
            label[10:24, 5 + 4 * i : 9 + 4 * i] = PEDESTRIAN
        maps.append(LabelSource(label, f"real{i}.png"))
    return synthesize(gen, maps, root / "synth", ["day"], k=1, seed=0, batch_size=8)


def test_filter_samples_writes_a_split_file_a_filtered_manifest_and_a_summary(synth_dir, tmp_path):
    files = [r.image.name for r in open_dataset(synth_dir, "train").records]
    scores = dict(zip(files, [0.1, 0.3, 0.2, 0.9, 0.8, 0.7], strict=True))
    kept = filter_samples(synth_dir, scores, threshold=0.5, quotas={"pedestrian": 0.3}, out_dir=tmp_path)
    assert kept == [files[1], *files[3:]]  # the best pedestrian sample comes back for the quota
    ds = open_dataset(synth_dir, "train")
    assert read_split_file(tmp_path / KEEP_FILE, ds) == [1, 3, 4, 5]
    rows = [json.loads(line) for line in (tmp_path / FILTERED_MANIFEST).read_text().splitlines()]
    assert [r["file"] for r in rows] == kept and [r["score"] for r in rows] == [0.3, 0.9, 0.8, 0.7]
    assert all(r["source"].startswith("real") and r["condition"] == "day" for r in rows)
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["per_quota_class"]["pedestrian"] == {"samples": 3, "kept": 1, "required": 1}
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert filter_samples(synth_dir, dict(reversed(list(scores.items()))), 0.5, {6: 0.3}, out_dir=tmp_path) == kept
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert filter_samples(synth_dir, scores, threshold=0.5, out_dir=tmp_path) == files[3:]
    unscorable = {**scores, files[3]: None}  # fidelity_report gives None for a map without labeled pixels
    assert filter_samples(synth_dir, unscorable, threshold=0.5, out_dir=tmp_path) == files[4:]
    with pytest.raises(DataError, match="unscored"):
        filter_samples(synth_dir, {files[0]: 1.0}, threshold=0.5, out_dir=tmp_path)
