"""Pixel-level trust maps: the class-wise loss tolerance on a hand-made case, the maps written beside a synthetic set
from a real-data segmenter, and the mixing stream turning untrusted pixels into ignore."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from synthlabel.cli import main
from synthlabel.config import SourceConfig
from synthlabel.data.datasets import open_dataset
from synthlabel.data.trust import read_trust, trust_path
from synthlabel.device import resolve_precision
from synthlabel.downstream.mixing import load_source
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.synth.trust import pixel_losses, trust_from_losses, write_trust_maps

IGNORE = 255


def test_trust_ignores_exactly_the_pixels_above_tolerance_times_their_class_mean():
    labels = torch.tensor([[[0, 0, 0, 0], [1, 1, 1, IGNORE]]])
    loss = torch.tensor([[[1.0, 1.0, 1.0, 5.0], [0.2, 0.2, 0.26, 0.0]]])
    class_mean = torch.tensor([2.0, 0.2])  # class 0: limit 2.5; class 1: limit 0.25
    trusted = trust_from_losses(loss, labels, class_mean, 1.25, IGNORE)
    assert trusted.tolist() == [[[True, True, True, False], [True, True, False, True]]]  # ignore stays trusted
    disagree = torch.tensor([[[False, True, False, False], [False, False, False, True]]])
    with_votes = trust_from_losses(loss, labels, class_mean, 1.25, IGNORE, disagree)
    assert with_votes.tolist() == [[[True, False, True, False], [True, True, False, True]]]


@pytest.fixture
def seg_dir(demo_root, tmp_path, tiny_seg):
    out = tmp_path / "seg"
    assert main(["train-seg", *tiny_seg(demo_root, steps=3), "--out", str(out)]) == 0
    return out / "model"


def test_written_maps_match_the_loss_rule_and_the_mixing_stream_ignores_them(demo_root, seg_dir, tmp_path):
    demo_root = Path(shutil.copytree(demo_root, tmp_path / "synthetic"))  # the shared fixture stays untouched
    real = open_dataset(demo_root, "val")  # the class means come from real images the segmenter never saw
    summary = write_trust_maps(demo_root, [seg_dir], tolerance=1.0, reference=real)
    ds = open_dataset(demo_root, "train")
    ignore = ds.out_spec.ignore_id
    model = load_segmenter(seg_dir)[0]
    pairs = [ds.read(i) for i in range(len(ds))]
    images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2)
    labels = torch.from_numpy(np.stack([p[1] for p in pairs]))
    precision = resolve_precision("auto", "auto")
    loss, _ = pixel_losses([model], images, labels, ignore, precision)
    real_pairs = [real.read(i) for i in range(len(real))]
    real_images = torch.from_numpy(np.stack([p[0] for p in real_pairs])).permute(0, 3, 1, 2)
    real_labels = torch.from_numpy(np.stack([p[1] for p in real_pairs]))
    real_loss, _ = pixel_losses([model], real_images, real_labels, ignore, precision)
    labeled = labels != ignore

    def mean(c: int) -> float:  # the real mean, or the synthetic one for a class the real images lack
        on_real = real_labels == c
        return (real_loss[on_real] if on_real.any() else loss[labeled & (labels == c)]).mean().item()

    means = torch.tensor([mean(c) if (labels == c).any() else 0.0 for c in range(ds.out_spec.num_classes)])
    expected = ~labeled | (loss <= means[labels.clamp(0, len(means) - 1)])
    written = np.stack(
        [read_trust(trust_path(demo_root, "train", r.image.name), labels.shape[-2:]) for r in ds.records]
    )
    assert np.mean(written == expected.numpy()) > 0.999  # bf16 rounding may flip a pixel on the limit
    share = 1 - written[labeled.numpy()].mean()
    assert 0 < summary["untrusted_share"] == pytest.approx(share, abs=1e-3)
    recorded = json.loads((demo_root / "trust" / "trust.json").read_text())
    assert recorded["tolerance"] == 1.0 and recorded["reference"].endswith("(val)")
    assert {v["mean_loss_from"] for v in recorded["per_class"].values()} <= {"real", "synthetic"}

    source = load_source(SourceConfig(path=str(demo_root)), ds.out_spec, None, seed=0)
    assert torch.equal(source.data.labels, torch.where(torch.from_numpy(written), labels, ignore))
    plain = load_source(SourceConfig(path=str(demo_root), trust=False), ds.out_spec, None, seed=0)
    assert torch.equal(plain.data.labels, labels)
    # a second call with the same settings leaves the maps alone; another tolerance rewrites them
    stamp = trust_path(demo_root, "train", ds.records[0].image.name).stat().st_mtime_ns
    write_trust_maps(demo_root, [seg_dir], tolerance=1.0, reference=real)
    assert trust_path(demo_root, "train", ds.records[0].image.name).stat().st_mtime_ns == stamp
    looser = write_trust_maps(demo_root, [seg_dir], tolerance=3.0, reference=real)
    assert looser["untrusted_share"] < summary["untrusted_share"]


def test_trust_command_writes_the_maps_and_says_how_many_pixels_it_ignores(demo_root, seg_dir, tmp_path, capsys):
    synth = Path(shutil.copytree(demo_root, tmp_path / "synthetic"))
    args = ["trust", str(synth), "--segmenter", str(seg_dir), "--tolerance", "1.5", "--real", str(demo_root)]
    assert main(args) == 0
    assert "of labeled pixels not trusted (tolerance 1.5)" in capsys.readouterr().out
    names = {r.image.stem for r in open_dataset(synth, "train").records}
    assert {p.stem for p in (synth / "trust" / "train").glob("*.png")} == names
