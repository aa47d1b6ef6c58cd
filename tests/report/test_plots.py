"""Report plots: Figures with the expected lines, bands and bars; sample_grid PNG size, tiles and overlays."""

import io
import warnings

import numpy as np
import pytest
import torch
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from PIL import Image

from synthlabel.report.plots import amount_curve, delta_bars, sample_grid


def bands(ax) -> int:
    return sum(isinstance(c, PolyCollection) for c in ax.collections)


def test_amount_curve_one_line_and_band_per_arm():
    sweep = {
        "pix2pix": [(4.0, 0.55, 0.02, 3), (0.0, 0.50, 0.01, 3), (1.0, 0.53, 0.02, 3)],
        "spade": [(0.0, 0.50, 0.01, 3), (1.0, 0.56, None, 1)],
    }
    fig = amount_curve(sweep)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and bands(ax) == 2
    x, y = ax.lines[0].get_data()
    assert list(x) == [0.0, 1.0, 4.0] and list(y) == pytest.approx([50.0, 53.0, 55.0])  # sorted, in percent
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["pix2pix", "spade"]
    assert len(amount_curve([(0, 0.5, None, 1)]).axes[0].lines) == 1


def test_delta_bars_from_mapping_with_missing_and_rare():
    deltas = {
        "x1": {"road": {"mean": 0.01, "std": 0.005}, "car": {"mean": -0.02, "std": 0.01}, "bike": None},
        "x4": {
            "road": {"mean": 0.0, "std": None},
            "car": {"mean": 0.03, "std": 0.01},
            "bike": {"mean": 0.1, "std": 0.02},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = delta_bars(deltas, ["road", "car", "bike"], rare=["bike"])
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(len(b) == 3 for b in bars)
    assert [p.get_height() for p in bars[1]] == pytest.approx([0.0, 3.0, 10.0])
    ticks = {t.get_text(): t for t in ax.get_xticklabels()}
    assert ticks["bike"].get_color() == "tab:red" and ticks["road"].get_color() != "tab:red"


def test_delta_bars_from_class_deltas_result():
    from synthlabel.eval.gain import class_deltas

    def rec(arm, seed, road, car):
        ious = {"road": road, "car": car}
        return {"arm": arm, "amount": 0 if arm == "real" else 1, "seed": seed,
                "metrics": {"miou": (road + car) / 2, "per_class_iou": ious}}  # fmt: skip

    recs = [rec("real", 0, 0.9, 0.4), rec("real", 1, 0.9, 0.5), rec("syn", 0, 0.9, 0.5), rec("syn", 1, 0.92, 0.55)]
    fig = delta_bars(class_deltas(recs, "real", rare=["car"]))
    ax = fig.axes[0]
    (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [p.get_height() for p in bars] == pytest.approx([1.0, 7.5])
    assert "rare" in ax.get_title()


def grid_pixels(data: bytes) -> np.ndarray:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_sample_grid_size_and_tiles():
    images = np.zeros((5, 6, 4, 3), dtype=np.uint8)
    for i in range(5):
        images[i] = 40 * (i + 1)
    grid = grid_pixels(sample_grid(images, nrow=3, padding=2))
    assert grid.shape == (2 * (6 + 2) + 2, 3 * (4 + 2) + 2, 3)
    assert (grid[2:8, 2:6] == 40).all() and (grid[10:16, 8:12] == 200).all()  # tiles 0 and 4
    assert (grid[10:16, 14:18] == 255).all() and (grid[0, :] == 255).all()  # empty slot and padding


def test_sample_grid_overlay_palette_and_ignore_from_torch():
    images = torch.full((2, 3, 2, 2), -1.0)  # [N, 3, H, W] float in [-1, 1] -> black
    labels = torch.tensor([[[0, 1], [255, 1]], [[0, 0], [2, 0]]])  # 2 is beyond the palette: transparent too
    palette = [[255, 0, 0], [0, 255, 0]]
    full = grid_pixels(sample_grid(images, labels, palette, nrow=2, alpha=1.0, padding=0))
    assert full.shape == (2, 4, 3)
    assert full[0, 0].tolist() == [255, 0, 0] and full[0, 1].tolist() == [0, 255, 0]
    assert full[1, 0].tolist() == [0, 0, 0] and full[1, 2].tolist() == [0, 0, 0]  # ignore ids unchanged
    half = grid_pixels(sample_grid(images, labels, palette, nrow=2, alpha=0.5, padding=0))
    assert half[0, 0].tolist() == [128, 0, 0]
    with pytest.raises(ValueError, match="palette"):
        sample_grid(images, labels)
    with pytest.raises(ValueError, match="labels must be"):
        sample_grid(images, labels[:1], palette)
