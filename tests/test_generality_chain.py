"""A dataset with no void class (classes.json `ignore_index: null`, two classes) runs the whole chain: segmenter,
generator, synthesis, filter, experiment and evaluation, at tiny sizes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthlabel import pipeline
from synthlabel.config import PipelineConfig, SegConfig, build_config
from synthlabel.data.datasets import open_dataset
from synthlabel.downstream import workflow

SIZE = (16, 32)


def two_class_set(root: Path) -> Path:
    """Folders layout, splits train/test, masks of ids 0 and 1 only (every pixel labeled), no validation split."""
    (root / "classes.json").parent.mkdir(parents=True)
    spec = {"ignore_index": None, "classes": [{"id": 0, "name": "ground", "color_rgb": [0, 0, 0]}]}
    spec["classes"].append({"id": 1, "name": "blob", "color_rgb": [250, 0, 0]})
    (root / "classes.json").write_text(json.dumps(spec))
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 2)):
        for i in range(n):
            mask = np.zeros(SIZE, np.uint8)
            y, x = rng.integers(0, 8), rng.integers(0, 22)
            mask[y : y + 8, x : x + 10] = 1
            image = np.where(mask[..., None] == 1, [200, 40, 40], [30, 90, 30]).astype(np.uint8)
            for kind, array in (("images", image), ("masks", mask)):
                (root / kind / split).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / kind / split / f"s{i}.png")
    return root


def test_no_void_class_runs_the_whole_chain(tmp_path):
    data = two_class_set(tmp_path / "data")
    tiny = {"steps": 2, "batch_size": 2}
    cfg = build_config(
        PipelineConfig,
        {
            "out": str(tmp_path / "run"),
            "data": {"path": str(data), "size": list(SIZE)},
            "model": {"width": 8, "depth": 3},
            "train": {**tiny, "warmup_steps": 1},
            "generator": {"model": {"name": "pix2pix", "width": 8}, "train": tiny},
            "experiment": {"arms": ["copy_paste", "synthetic_recomposed"]},
        },
    )
    summary = pipeline.run_pipeline(cfg)
    out = tmp_path / "run"
    assert open_dataset(data, "train").spec.ignore_index is None
    metrics = json.loads((out / "eval_test.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and len(metrics["per_class_iou"]) == 2
    synth = open_dataset(out / "synth_recomposed", "train")
    assert synth.spec.ignore_index is None  # written with no ignore id
    labels = np.stack([synth.read_label(i) for i in range(len(synth))])
    assert set(np.unique(labels).tolist()) <= {0, 1}
    assert (out / "synth_recomposed" / "keep.txt").is_file() and "Gain of synthetic data" in summary.read_text()


@pytest.mark.parametrize("val_split", ["val", None])
def test_train_seg_without_validation_split_says_so_and_never_reads_test(tmp_path, caplog, monkeypatch, val_split):
    data = two_class_set(tmp_path / "data")
    opened = []
    real_open = workflow.open_split
    monkeypatch.setattr(workflow, "open_split", lambda d, split: opened.append(split) or real_open(d, split))
    cfg = build_config(
        SegConfig,
        {
            "data": {"path": str(data), "size": list(SIZE), "val_split": val_split},
            "model": {"width": 8, "depth": 3},
            "train": {"steps": 2, "batch_size": 2, "warmup_steps": 1},
        },
    )
    with caplog.at_level(logging.INFO, logger="synthlabel"):
        result = workflow.train_segmenter(cfg, tmp_path / "seg")
    why = f"no 'val' split in {data}" if val_split else "data.val_split is null"
    assert f"{why}: training without validation" in caplog.text
    assert result.val is None and not (tmp_path / "seg" / "val_metrics.json").exists()
    assert "test" not in opened and (tmp_path / "seg" / "model").is_dir()


def test_run_without_data_size_resolves_a_working_size_the_generator_takes(tmp_path):
    assert pipeline.working_size((180, 240)) == (176, 240)  # CamVid half resolution: 180 is no multiple of 16
    assert pipeline.working_size((1024, 2048)) == (128, 256) and pipeline.working_size((256, 256)) == (256, 256)
    data = two_class_set(tmp_path / "data")
    cfg = build_config(PipelineConfig, {"out": str(tmp_path / "run"), "data": {"path": str(data)}})
    resolved = pipeline.prepare_data(cfg, tmp_path / "run")
    assert resolved.data.size == SIZE and cfg.data.size is None
