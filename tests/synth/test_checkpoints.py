"""Picking a generator checkpoint by a downstream validation score: every kept model renders the training maps, a
short segmenter run on real + renders scores it on val, and the best step is recorded."""

from __future__ import annotations

import json

import pytest

from synthlabel.config import GenConfig, SegConfig, build_config
from synthlabel.errors import DataError
from synthlabel.generators.workflow import train_generator
from synthlabel.synth import checkpoints


def test_every_kept_model_is_scored_and_the_best_val_score_is_picked(demo_root, tmp_path, tiny_seg, monkeypatch):
    gen = build_config(GenConfig, {}, [f"data.path={demo_root}", "data.size=[32, 48]", "model.width=8",
                                       "model.discriminator.width=8", "train.steps=4", "train.batch_size=2",
                                       "train.sample_every=2", "train.keep_models=true"])  # fmt: skip
    train_generator(gen, tmp_path / "gen")
    seg = build_config(SegConfig, {}, tiny_seg(demo_root, steps=2))
    summary = checkpoints.score_checkpoints(tmp_path / "gen", seg, tmp_path / "select")
    assert set(summary["scores"]) == {"2", "4"}
    vals = {int(s): v["val_miou"] for s, v in summary["scores"].items()}
    assert summary["best"] == max(vals, key=lambda s: (vals[s], s))
    assert json.loads((tmp_path / "select" / "selection.json").read_text())["best"] == summary["best"]
    n_train = len(list((demo_root / "train").glob("*.png")))
    assert len((tmp_path / "select" / "step_000002" / "synth" / "manifest.jsonl").read_text().splitlines()) == n_train

    def no_training(*a, **k):
        raise AssertionError("a scored checkpoint was scored again")

    monkeypatch.setattr(checkpoints, "train_segmenter", no_training)
    assert checkpoints.score_checkpoints(tmp_path / "gen", seg, tmp_path / "select")["best"] == summary["best"]


def test_a_run_without_kept_models_is_named(tmp_path, demo_root, tiny_seg):
    seg = build_config(SegConfig, {}, tiny_seg(demo_root, steps=2))
    with pytest.raises(DataError, match="train.keep_models=true"):
        checkpoints.score_checkpoints(tmp_path, seg, tmp_path / "select")
