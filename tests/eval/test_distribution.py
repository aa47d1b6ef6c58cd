"""Label distribution analysis: exact statistics on tiny maps, Spearman, rare classes, Markdown and the plot."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.errors import DataError
from synthlabel.eval.distribution import (
    analyze_distribution,
    distribution_markdown,
    label_statistics,
    plot_frequency_vs_iou,
)

IGNORE = 255
MAPS = [np.array([[0, 0], [1, IGNORE]]), np.array([[2, 2], [2, 2]])]
NAMES = ["road", "car", "sky", "boat"]


def test_label_statistics_exact_fractions():
    st = label_statistics(MAPS, num_classes=4, ignore_index=IGNORE)
    assert st["pixel_counts"] == [2, 1, 4, 0]
    assert st["pixel_frequency"] == pytest.approx([2 / 7, 1 / 7, 4 / 7, 0.0])
    assert st["appearance_frequency"] == pytest.approx([0.5, 0.5, 0.5, 0.0])
    assert st["n_images"] == 2 and st["ignored_fraction"] == pytest.approx(1 / 8)
    json.dumps(st, allow_nan=False)


def test_label_statistics_accepts_torch_batches():
    batch = torch.as_tensor(np.stack(MAPS))  # [B, H, W]
    assert label_statistics([batch], 4, IGNORE) == label_statistics(MAPS, 4, IGNORE)


def test_label_statistics_rejects_unknown_class_id():
    with pytest.raises(DataError, match="outside 0..3"):
        label_statistics([np.array([[0, 9]])], 4, IGNORE)


def _stats(freqs):
    return {"pixel_frequency": freqs, "appearance_frequency": [min(1.0, 2 * f) for f in freqs]}


def test_spearman_monotonic_rare_and_targets():
    stats = {"train": _stats([0.1, 0.2, 0.3, 0.4]), "val": _stats([0.4, 0.3, 0.2, 0.1])}
    iou = {"road": 0.1, "car": 0.3, "sky": 0.5, "boat": 0.9}
    a = analyze_distribution(stats, NAMES, iou)
    assert a["spearman"]["pixel_frequency_vs_iou"]["rho"] == pytest.approx(1.0)
    assert a["spearman"]["appearance_frequency_vs_iou"]["rho"] == pytest.approx(1.0)
    assert a["rare_classes"] == ["road", "car"]  # below the median 0.25 of train, rarest first
    assert a["suggested_targets"] == ["road", "car", "sky", "boat"]  # by 1 - IoU, worst first
    assert a["rows"][1]["pixel_frequency"] == {"train": 0.2, "val": 0.3}
    val_ref = analyze_distribution(stats, NAMES, iou, reference_split="val")
    assert val_ref["spearman"]["pixel_frequency_vs_iou"]["rho"] == pytest.approx(-1.0)
    json.dumps(a, allow_nan=False)


def test_spearman_undefined_and_no_iou():
    stats = {"train": _stats([0.1, 0.2, 0.3, 0.4])}
    few = analyze_distribution(stats, NAMES, {"road": 0.2, "car": 0.3, "sky": None})
    assert few["spearman"]["pixel_frequency_vs_iou"] is None and few["spearman"]["n_classes"] == 2
    assert few["suggested_targets"][:2] == ["road", "car"]  # scored first, then unscored by rarity
    none = analyze_distribution({"train": _stats([0.4, 0.1, 0.3, 0.2])}, NAMES)
    assert none["spearman"] is None
    assert none["suggested_targets"] == ["car", "boat", "sky", "road"]
    with pytest.raises(ValueError, match="reference split"):
        analyze_distribution({"val": _stats([0.1, 0.2, 0.3, 0.4])}, NAMES)


def test_distribution_markdown():
    stats = {"train": label_statistics(MAPS, 4, IGNORE)}
    a = analyze_distribution(stats, NAMES, {"road": 0.75, "car": 0.25, "sky": 0.5, "boat": None})
    text = distribution_markdown(a)
    for name in NAMES:
        assert f"| {name}" in text
    assert "pixels % train" in text and "57.14" in text  # sky: 4 / 7 of labeled pixels
    # ranks by frequency car<road<sky, by IoU car<sky<road: rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert "Spearman over 3 classes" in text and "ρ = +0.50" in text
    assert "appearance frequency (train) vs IoU: undefined" in text  # every class is in 1 of 2 images


def _assert_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_plot_frequency_vs_iou_writes_png(tmp_path):
    stats = {"train": _stats([0.001, 0.02, 0.3, 0.679])}
    a = analyze_distribution(stats, NAMES, {"road": 0.1, "car": 0.3, "sky": 0.5, "boat": 0.9})
    out = plot_frequency_vs_iou(a, tmp_path / "plots" / "freq_iou.png", title="toy")
    assert out == tmp_path / "plots" / "freq_iou.png"
    _assert_png(out)


def test_plot_without_iou_is_a_bar_chart(tmp_path):
    a = analyze_distribution({"train": label_statistics(MAPS, 4, IGNORE)}, NAMES)
    _assert_png(plot_frequency_vs_iou(a, tmp_path / "freq.png"))


def test_plot_skips_unplottable_points(tmp_path):
    # a class without pixels cannot sit on a log axis and a class without IoU has no y: both are left out
    stats = {"train": _stats([0.0, 0.2, 0.3, 0.5])}
    a = analyze_distribution(stats, NAMES, {"road": 0.1, "car": 0.3, "sky": None, "boat": 0.9})
    _assert_png(plot_frequency_vs_iou(a, tmp_path / "edge.png"))
