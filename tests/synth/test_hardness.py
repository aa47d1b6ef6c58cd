"""Hard-map resampling: class hardness from validation IoU, map hardness over the classes present, render counts
that follow it exactly, and synthesis with one count per map."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from synthlabel.data.toy import DEMO_CONDITIONS, demo_spec, sample_scene
from synthlabel.generators.io import save_generator
from synthlabel.registry import GENERATORS
from synthlabel.synth.hardness import class_hardness, hard_map_counts, hardness_rank, map_hardness, render_counts
from synthlabel.synth.synthesize import LabelSource, synthesize


def test_harder_maps_are_drawn_more_often():
    spec = demo_spec()
    iou = {n: 0.9 for n in spec.names} | {spec.names[5]: 0.1, spec.names[6]: None}
    hard = class_hardness(iou, spec)
    assert hard[5] == pytest.approx(0.9) and hard[0] == pytest.approx(0.1)
    assert hard[6] == pytest.approx(np.mean([1 - v for v in iou.values() if v is not None]))  # unknown: the mean
    easy = np.zeros((4, 4), dtype=np.int64)
    rare = easy.copy()
    rare[0, 0] = 5  # one pixel of the hard class: counts as a class present, not by its area
    empty = np.full((4, 4), spec.ignore_id, dtype=np.int64)
    scores = map_hardness([easy, rare, empty], hard)
    assert scores.tolist() == pytest.approx([0.1, 0.5, 0.0])
    counts = render_counts(scores, total=28, minimum=1)
    # 25 spare renders shared 1:5:0 -> 4.17, 20.83, 0 -> floors 4, 20 and the last one to the larger remainder
    assert counts == [1 + 4, 1 + 21, 1] and sum(counts) == 28
    assert render_counts(np.zeros(3), 7) == [3, 2, 2]  # no signal: shared evenly, remainders to the first
    assert hardness_rank(np.array([0.5, 0.1, 0.5, 0.9])).tolist() == [2.5, 1.0, 2.5, 4.0]
    with pytest.raises(ValueError, match="at least 2"):
        render_counts(scores, total=5, minimum=2)


@pytest.fixture
def generator_dir(tmp_path):
    torch.manual_seed(0)
    kwargs = dict(num_classes=8, num_conditions=4, width=8, image_size=(32, 48))
    return save_generator(tmp_path / "gen", "spade", kwargs, GENERATORS.create("spade", **kwargs), demo_spec(),
                          list(DEMO_CONDITIONS))  # fmt: skip


@pytest.fixture
def maps():
    return [LabelSource(sample_scene(s, (32, 48)).label, f"m{s}.png") for s in range(3)]


def test_hard_map_counts_spread_renders_by_rank(tmp_path):
    from synthlabel.data.datasets import open_dataset
    from synthlabel.data.toy import make_demo_dataset

    ds = open_dataset(make_demo_dataset(tmp_path / "d", n_train=10, n_val=0, n_test=0, size=(32, 48)), "train")
    spec = ds.out_spec
    iou = {n: 0.9 for n in spec.names} | {"pedestrian": 0.05, "pole": 0.1}
    counts = hard_map_counts(ds, iou, k=1, extra=2.0)
    assert sum(counts) == 30 and min(counts) >= 1
    hard = map_hardness([ds.read_label(i) for i in range(len(ds))], class_hardness(iou, spec))
    assert counts[int(np.argmax(hard))] > counts[int(np.argmin(hard))]  # the hardest map gets more than the easiest


def test_per_map_counts_in_synthesize(generator_dir, maps, tmp_path):
    out = synthesize(generator_dir, maps, tmp_path / "s", ["day"], [1, 3, 2], seed=0, batch_size=4)
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert Counter(line["source"] for line in lines) == {"m0.png": 1, "m1.png": 3, "m2.png": 2}
    with pytest.raises(ValueError, match="one count per map"):
        synthesize(generator_dir, maps, tmp_path / "t", ["day"], [1, 2], seed=0)
