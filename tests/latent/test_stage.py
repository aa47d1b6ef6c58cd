"""The latent-labels chain on demo data (issue 14): train-latent-gan -> train-latent-labels (encoder, inverted
labeled images, label head, the head scored on inverted test images) -> sample-latent: a readable labeled set,
deterministic, resumable, uncertain pixels written as ignore, keep.txt without the most uncertain images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from synthlabel.cli import main
from synthlabel.data import manifest
from synthlabel.data.datasets import open_dataset
from synthlabel.latent import stage


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def chain(demo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    gan = ["data.size=[32, 48]", "model.z_dim=8", "model.w_dim=8", "model.width=4", "model.max_channels=16",
           "model.d_width=4", "train.steps=3", "train.batch_size=4", "train.sample_every=3"]  # fmt: skip
    assert main(["train-latent-gan", f"data.path={demo_root}", *gan, "--out", str(root / "gan")]) == 0
    labels = [f"data.path={demo_root}", "data.size=[32, 48]", "data.subset.n=4", f"gan={root / 'gan' / 'model'}",
              "encoder.width=8", "encoder.levels=3", "encoder.latent_steps=5", "encoder.recon_steps=3",
              "encoder.refine_steps=2", "encoder.batch_size=4", "head.members=2", "head.hidden=16", "head.steps=5",
              "head.pixels_per_image=64"]  # fmt: skip
    assert main(["train-latent-labels", *labels, "--out", str(root / "labels")]) == 0
    return root


def test_the_chain_trains_the_encoder_and_head_and_scores_the_head_on_test(chain):
    run = chain / "labels"
    for name in ("encoder/config.json", "head/model.safetensors", "inverted.safetensors", "subset.txt"):
        assert (run / name).is_file(), name
    report = json.loads((run / "head_test.json").read_text())
    assert 0 <= report["miou"] <= 1 and len(report["per_class_iou"]) == 8


def test_sampled_pairs_are_deterministic_resumable_and_ignore_uncertain_pixels(chain, tmp_path, monkeypatch):
    args = ["sample-latent", str(chain / "labels"), "--gan", str(chain / "gan" / "model"), "--n", "6"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    ds = open_dataset(tmp_path / "a", "train")
    rows = manifest.rows(tmp_path / "a")
    assert len(ds) == 6 and len(rows) == 6 and all("uncertainty" in r for r in rows)
    assert len((tmp_path / "a" / "keep.txt").read_text().split()) == 5  # the most uncertain image left out
    ignored = [r["ignored"] for r in rows]
    ignore = ds.out_spec.ignore_id
    masks = [np.array(Image.open(r.mask)) for r in ds.records]
    assert sum(ignored) > 0 and [round(float((m == ignore).mean()), 4) for m in masks] == ignored
    assert files(tmp_path / "a") == files(main([*args, "--out", str(tmp_path / "b")]) or tmp_path / "b")
    calls = {"n": 0}
    real_append = manifest.append

    def dying_append(out_dir, entry):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real_append(out_dir, entry)

    monkeypatch.setattr(stage.manifest, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        stage.sample_latent_dataset(chain / "labels", chain / "gan" / "model", tmp_path / "c", 6)
    monkeypatch.setattr(stage.manifest, "append", real_append)
    stage.sample_latent_dataset(chain / "labels", chain / "gan" / "model", tmp_path / "c", 6)
    assert files(tmp_path / "c") == files(tmp_path / "a")
