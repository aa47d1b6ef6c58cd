"""Report plots as matplotlib Figures (Agg, no pyplot state): gain vs synthetic amount, per-class IoU deltas, and PNG
grids of sample images with label-map overlays."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

Point = tuple[float, float | None, float | None, int]  # (amount, mean, std, n) as from eval.gain.amount_sweep


def _new_figure(width: float = 7.0, height: float = 4.5) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _band(ax, xs: np.ndarray, mean: np.ndarray, std: np.ndarray | None, label: str) -> None:
    """A mean line with markers and a shaded ± std band where std is known."""
    (line,) = ax.plot(xs, mean, marker="o", markersize=4, label=label)
    if std is not None and np.isfinite(std).any():
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)


def _floats(values: Sequence[float | None], scale: float = 1.0) -> np.ndarray:
    return np.array([math.nan if v is None else scale * float(v) for v in values], dtype=np.float64)


def amount_curve(sweep: Mapping[str, Sequence[Point]] | Sequence[Point]) -> Figure:
    """mIoU (%) mean line and ± std band against the synthetic amount (synthetic images per real image).

    `sweep` maps a curve name (an arm) to points `(amount, mean, std, n)` (see `eval.gain.amount_sweep`); a
    bare list of points is one unnamed curve."""
    curves = {"": sweep} if not isinstance(sweep, Mapping) else sweep
    fig, ax = _new_figure()
    for name, points in curves.items():
        pts = sorted(points, key=lambda p: float(p[0]))
        xs = np.array([float(p[0]) for p in pts])
        _band(ax, xs, _floats([p[1] for p in pts], 100.0), _floats([p[2] for p in pts], 100.0), str(name))
    ax.set_xlabel("synthetic images per real image")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU vs synthetic amount", fontsize=10)
    ax.grid(True, alpha=0.3)
    if any(curves):
        ax.legend(fontsize=8)
    return fig


def _per_class_series(deltas: Mapping) -> dict[str, Mapping]:
    """Name -> {class: {"mean", "std"} | None}, from a `class_deltas` result or such a mapping itself."""
    if "arms" in deltas and isinstance(deltas["arms"], Mapping):
        return {name: comp["per_class"] for name, comp in deltas["arms"].items()}
    return dict(deltas)


def delta_bars(deltas: Mapping, classes: Sequence[str] | None = None, rare: Sequence[str] | None = None) -> Figure:
    """Grouped bars of the per-class IoU delta (points) vs the baseline, one bar group per class and one color per arm.

    `deltas` is an `eval.gain.class_deltas` result or a mapping arm -> {class: {"mean", "std"} | None}; error
    bars are the std (spread across seeds). A missing delta is an empty slot. Rare classes (`rare`, default
    the result's own list) get bold red tick labels."""
    series = _per_class_series(deltas)
    if classes is None:
        classes = list(dict.fromkeys(c for per_class in series.values() for c in per_class))
    if rare is None and isinstance(deltas.get("rare"), Sequence):
        rare = deltas["rare"]
    rare_set = set(rare or [])
    fig, ax = _new_figure(max(6.0, 0.55 * len(classes) * max(1, len(series)) ** 0.5 + 2.0), 4.5)
    width = 0.8 / max(1, len(series))
    xs = np.arange(len(classes), dtype=np.float64)
    for i, (name, per_class) in enumerate(series.items()):
        stats = [per_class.get(c) for c in classes]
        mean = _floats([None if s is None else s.get("mean") for s in stats], 100.0)
        std = _floats([None if s is None else s.get("std") for s in stats], 100.0)
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(xs + offset, np.nan_to_num(mean), width, yerr=np.where(np.isnan(mean), np.nan, std), capsize=2,
               label=str(name))  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(xs, [str(c) for c in classes], rotation=45, ha="right", fontsize=8)
    for tick, name in zip(ax.get_xticklabels(), classes, strict=True):
        if name in rare_set:
            tick.set_color("tab:red")
            tick.set_fontweight("bold")
    ax.set_ylabel("IoU delta (points)")
    ax.set_title("Per-class IoU change vs baseline" + (" (rare classes in red)" if rare_set else ""), fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    if len(series) > 1 or any(series):
        ax.legend(fontsize=8)
    return fig


def _to_uint8_nhwc(images) -> np.ndarray:
    """[N, H, W, 3] uint8 from numpy/torch, accepting [N, 3, H, W] and float images in [-1, 1] too."""
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if arr.ndim != 4:
        raise ValueError(f"images must be [N, H, W, 3] (or [N, 3, H, W]), got shape {arr.shape}")
    if arr.shape[-1] != 3 and arr.shape[1] == 3:
        arr = arr.transpose(0, 2, 3, 1)
    if arr.shape[-1] != 3:
        raise ValueError(f"images must have 3 color channels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"images must be uint8 or float in [-1, 1], got {arr.dtype}")
        arr = np.round((np.clip(arr, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return arr


def _overlay(image: np.ndarray, label_map: np.ndarray, colors: np.ndarray, alpha: float) -> np.ndarray:
    """Blend palette colors over the image where the label is a palette id; other ids stay transparent."""
    ids = label_map.astype(np.int64)
    known = (ids >= 0) & (ids < len(colors))
    out = image.astype(np.float32)
    out[known] = (1.0 - alpha) * out[known] + alpha * colors[ids[known]]
    return np.round(out).astype(np.uint8)


def sample_grid(
    images,
    labels=None,
    palette: Sequence[Sequence[int]] | None = None,
    nrow: int = 8,
    alpha: float = 0.5,
    padding: int = 2,
) -> bytes:
    """PNG bytes of a grid of image tiles, `nrow` tiles per row, `padding` white pixels around each tile.

    images: [N, H, W, 3] uint8 (numpy or torch; [N, 3, H, W] float in [-1, 1] is converted). labels: optional
    [N, H, W] int maps, drawn over the images in `palette` colors ([[r, g, b], ...], indexed by class id) with
    opacity `alpha` (1.0 shows the label map alone); ids outside the palette (ignore) are left transparent.
    The PNG is cols * (W + padding) + padding wide, rows * (H + padding) + padding high."""
    tiles = _to_uint8_nhwc(images)
    n, h, w, _ = tiles.shape
    if n == 0:
        raise ValueError("sample_grid needs at least one image")
    if labels is not None:
        if palette is None:
            raise ValueError("label overlays need a palette: [[r, g, b], ...] per class id")
        maps = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
        if maps.shape != (n, h, w):
            raise ValueError(f"labels must be [N, H, W] = {(n, h, w)}, got shape {maps.shape}")
        colors = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
        tiles = np.stack([_overlay(t, m, colors, float(alpha)) for t, m in zip(tiles, maps, strict=True)])
    cols = max(1, min(int(nrow), n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, 3), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top : top + h, left : left + w] = tile
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    return buf.getvalue()
