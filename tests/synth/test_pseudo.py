"""Self-training data (issue 14's cheap alternative): `pseudo-label` writes the segmenter's confident labels of
unlabeled images (others ignore) as a readable set, never reads their masks, is deterministic and resumable."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from synthlabel.cli import main
from synthlabel.data import manifest
from synthlabel.data.datasets import open_dataset
from synthlabel.downstream.segmenter import load_segmenter


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pseudo_labels_keep_confident_pixels_only(demo_root, tmp_path, tiny_seg):
    assert main(["train-seg", *tiny_seg(demo_root, steps=3), "--out", str(tmp_path / "seg")]) == 0
    seg = tmp_path / "seg" / "model"
    train = open_dataset(demo_root, "train")
    (tmp_path / "skip.txt").write_text(train.records[0].image.name + "\n")
    model, _ = load_segmenter(seg)
    image = np.array(Image.open(train.records[1].image))  # the first image pseudo-labeled (at the model's size)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        conf, pred = torch.softmax(model.eval()(x).float(), 1).max(1)
    threshold = float(conf.median())  # about half the pixels confident, whatever a 3-step model predicts
    args = ["pseudo-label", str(demo_root), "--segmenter", str(seg), "--confidence", f"{threshold}",
            "--exclude", str(tmp_path / "skip.txt")]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    ds = open_dataset(tmp_path / "a", "train")
    assert len(ds) == len(train) - 1
    label = ds.read_label(0)
    expected = torch.where(conf[0] >= threshold, pred[0], ds.out_spec.ignore_id).numpy()
    assert (label == expected).mean() > 0.99  # bf16 autocast at write time vs fp32 here: borderline pixels only
    rows = manifest.rows(tmp_path / "a")
    assert rows[0]["source"] == train.records[1].image.name and 0.3 < rows[0]["confident"] < 0.7
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert files(tmp_path / "a") == files(tmp_path / "b")
