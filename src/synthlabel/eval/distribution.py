"""Label distribution analysis: class pixel/appearance frequencies per split and how they relate to IoU, to decide
which classes to generate (rare classes and classes the downstream model gets wrong)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from scipy import stats

from synthlabel.checkpoint import atomic_file
from synthlabel.errors import DataError
from synthlabel.tables import fmt_pct, markdown_table


def _as_numpy(label_map: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(label_map, torch.Tensor):
        return label_map.detach().cpu().numpy()
    return np.asarray(label_map)


def label_statistics(label_maps: Iterable[np.ndarray | torch.Tensor], num_classes: int, ignore_index: int) -> dict:
    """Pixel and appearance frequency of each class over label maps ([H, W] each, or [B, H, W] batches).

    `pixel_frequency` is each class's share of labeled (non-ignore) pixels, `appearance_frequency` the share
    of images containing the class, `ignored_fraction` the share of all pixels that are ignore. A pixel value
    that is neither a class id in [0, K) nor the ignore index raises DataError."""
    k = int(num_classes)
    pixel_counts = np.zeros(k, dtype=np.int64)
    image_counts = np.zeros(k, dtype=np.int64)
    n_images = n_total = n_ignored = 0
    for i, batch in enumerate(label_maps):
        arr = _as_numpy(batch)
        if arr.ndim not in (2, 3):
            raise DataError(f"label map {i} has shape {arr.shape}; expected [H, W] or [B, H, W]")
        for label_map in arr.reshape(-1, *arr.shape[-2:]):
            flat = label_map.reshape(-1).astype(np.int64)
            ignored = flat == ignore_index
            valid = flat[~ignored]
            bad = valid[(valid < 0) | (valid >= k)]
            if bad.size:
                raise DataError(
                    f"label map {n_images} has class ids {sorted(set(bad.tolist()))[:10]} outside 0..{k - 1} "
                    f"that are not the ignore index {ignore_index}; fix the class map or num_classes"
                )
            counts = np.bincount(valid, minlength=k)
            pixel_counts += counts
            image_counts += counts > 0
            n_images, n_total, n_ignored = n_images + 1, n_total + flat.size, n_ignored + int(ignored.sum())
    labeled = int(pixel_counts.sum())
    return {
        "num_classes": k,
        "n_images": n_images,
        "pixel_counts": [int(c) for c in pixel_counts],
        "image_counts": [int(c) for c in image_counts],
        "pixel_frequency": [float(c) / labeled if labeled else 0.0 for c in pixel_counts],
        "appearance_frequency": [float(c) / n_images if n_images else 0.0 for c in image_counts],
        "ignored_fraction": float(n_ignored) / n_total if n_total else 0.0,
    }


def _spearman(x: Sequence[float], y: Sequence[float]) -> dict | None:
    """Spearman rank correlation, or None when undefined (fewer than 3 points or a constant input)."""
    if len(x) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input warns and gives NaN; reported as None below
        result = stats.spearmanr(x, y)
    rho, p = float(result.statistic), float(result.pvalue)
    return None if math.isnan(rho) else {"rho": rho, "p": None if math.isnan(p) else p}


def _class_rows(stats_by_split: dict[str, dict], names: list[str], iou: dict[str, float | None]) -> list[dict]:
    rows = []
    for c, name in enumerate(names):
        row = {"class": name}
        for kind in ("pixel_frequency", "appearance_frequency"):
            row[kind] = {s: float(st[kind][c]) for s, st in stats_by_split.items()}
        rows.append(row | {"iou": None if iou.get(name) is None else float(iou[name])})
    return rows


def _suggested_targets(rows: list[dict], reference_split: str) -> list[str]:
    """Scored classes by (1 - IoU) descending, then unscored ones; ties and unscored by rarity."""

    def key(row: dict) -> tuple:
        scored = row["iou"] is not None
        return (not scored, -(1.0 - row["iou"]) if scored else 0.0, row["pixel_frequency"][reference_split])

    return [r["class"] for r in sorted(rows, key=key)]


def analyze_distribution(
    stats_by_split: dict[str, dict],
    class_names: Sequence[str],
    per_class_iou: dict[str, float | None] | None = None,
    reference_split: str = "train",
) -> dict:
    """Per-class frequencies per split (from `label_statistics`) joined with IoU, Spearman rho, rare classes.

    `rare_classes` are the classes below the median reference-split pixel frequency, rarest first;
    `suggested_targets` ranks all classes by (1 - IoU) when IoUs are given, else by rarity."""
    names = [str(n) for n in class_names]
    if reference_split not in stats_by_split:
        raise ValueError(f"reference split {reference_split!r} not in the statistics (have {list(stats_by_split)})")
    for split, st in stats_by_split.items():
        if len(st["pixel_frequency"]) != len(names):
            raise ValueError(f"split {split!r} has {len(st['pixel_frequency'])} classes, got {len(names)} names")
    rows = _class_rows(stats_by_split, names, per_class_iou or {})
    ref_freq = [r["pixel_frequency"][reference_split] for r in rows]
    median = float(np.median(ref_freq))
    by_rarity = sorted(rows, key=lambda r: r["pixel_frequency"][reference_split])
    scored = [r for r in rows if r["iou"] is not None]
    spearman = None
    if per_class_iou is not None:
        ious = [r["iou"] for r in scored]
        spearman = {
            f"{kind}_vs_iou": _spearman([r[kind][reference_split] for r in scored], ious)
            for kind in ("pixel_frequency", "appearance_frequency")
        }
        spearman["n_classes"] = len(scored)
    return {
        "class_names": names,
        "splits": list(stats_by_split),
        "reference_split": reference_split,
        "rows": rows,
        "spearman": spearman,
        "rare_classes": [r["class"] for r in by_rarity if r["pixel_frequency"][reference_split] < median],
        "suggested_targets": _suggested_targets(rows, reference_split) if scored else [r["class"] for r in by_rarity],
    }


def _correlation_line(analysis: dict) -> str:
    sp = analysis.get("spearman")
    if sp is None:
        return "No per-class IoU given: no frequency-IoU correlation."
    ref = analysis["reference_split"]
    parts = []
    for kind, label in (("pixel_frequency", "pixel frequency"), ("appearance_frequency", "appearance frequency")):
        r = sp.get(f"{kind}_vs_iou")
        p = "" if r is None or r["p"] is None else f" (p = {r['p']:.3g})"
        parts.append(f"{label} ({ref}) vs IoU: " + ("undefined" if r is None else f"ρ = {r['rho']:+.2f}{p}"))
    return f"Spearman over {sp['n_classes']} classes: " + "; ".join(parts) + "."


def distribution_markdown(analysis: dict) -> str:
    """A Markdown table (class, pixel % and appearance % per split, IoU %) plus the correlation line."""
    splits = analysis["splits"]
    headers = ["class"] + [f"pixels % {s}" for s in splits] + [f"images % {s}" for s in splits] + ["IoU %"]
    rows = [
        [r["class"]]
        + [fmt_pct(r["pixel_frequency"][s], digits=2) for s in splits]
        + [fmt_pct(r["appearance_frequency"][s]) for s in splits]
        + [fmt_pct(r["iou"])]
        for r in analysis["rows"]
    ]
    lines = [markdown_table(headers, rows), "", _correlation_line(analysis)]
    if analysis["rare_classes"]:
        lines.append(
            f"Rare classes ({analysis['reference_split']}, below median): {', '.join(analysis['rare_classes'])}."
        )
    return "\n".join(lines) + "\n"


# label positions tried in turn (offset in points, horizontal and vertical alignment)
_LABEL_SPOTS = [(5, 3, "left", "bottom"), (5, -3, "left", "top"), (-5, 3, "right", "bottom"),
                (-5, -3, "right", "top"), (0, 7, "center", "bottom"), (0, -7, "center", "top")]  # fmt: skip


def _place_labels(fig: Figure, ax: Axes, xs: list[float], ys: list[float], labels: list[str]) -> None:
    """Annotate points, each label at the first spot inside the axes that clears markers and earlier labels."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centers = ax.transData.transform(np.column_stack([xs, ys])) if xs else []
    taken = [Bbox.from_extents(cx - 4, cy - 4, cx + 4, cy + 4) for cx, cy in centers]  # the markers
    for x, y, label in zip(xs, ys, labels, strict=True):
        for dx, dy, ha, va in _LABEL_SPOTS:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8)
            box = text.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(t) for t in taken):
                break
            text.remove()
        else:  # nothing fits: accept an overlap at the first spot
            dx, dy, ha, va = _LABEL_SPOTS[0]
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8)
            box = text.get_window_extent(renderer)
        taken.append(box)


def _scatter(fig: Figure, analysis: dict, title: str) -> None:
    ref = analysis["reference_split"]
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.11, top=0.88)  # fixed layout: label placement measures it
    ax = fig.add_subplot()
    points = [r for r in analysis["rows"] if r["iou"] is not None and r["pixel_frequency"][ref] > 0]
    xs = [100.0 * r["pixel_frequency"][ref] for r in points]
    ys = [100.0 * r["iou"] for r in points]
    ax.scatter(xs, ys, s=28, color="tab:blue", zorder=3)
    ax.set_xscale("log")
    if xs:
        ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    ax.set_xlabel(f"pixel frequency in {ref} (%, log scale)")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 105)
    ax.grid(True, which="both", alpha=0.3)
    sp = (analysis.get("spearman") or {}).get("pixel_frequency_vs_iou")
    rho = "Spearman ρ undefined"
    if sp is not None:
        rho = f"Spearman ρ = {sp['rho']:+.2f}" + ("" if sp["p"] is None else f" (p = {sp['p']:.3g})")
    ax.set_title(f"{title}\n{rho}", fontsize=10)
    _place_labels(fig, ax, xs, ys, [r["class"] for r in points])


def _bars(fig: Figure, analysis: dict, title: str) -> None:
    ref = analysis["reference_split"]
    rows = sorted(analysis["rows"], key=lambda r: r["pixel_frequency"][ref])
    ax = fig.add_subplot()
    values = [100.0 * r["pixel_frequency"][ref] for r in rows]
    ax.barh([r["class"] for r in rows], values, color="tab:blue")
    for i, v in enumerate(values):
        ax.annotate(f"{v:.2f}", (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel(f"pixel frequency in {ref} (%)")
    ax.set_xlim(0, max(values + [1.0]) * 1.15)
    ax.set_title(title, fontsize=10)


def plot_frequency_vs_iou(analysis: dict, path: str | os.PathLike, title: str | None = None) -> Path:
    """Save a PNG of IoU vs reference-split pixel frequency (log x, one labeled point per class).

    Without IoUs it is a bar chart of pixel frequencies instead. Written atomically; returns the path."""
    if any(r["iou"] is not None for r in analysis["rows"]):
        fig = Figure(figsize=(7, 5), dpi=120)
        FigureCanvasAgg(fig)
        _scatter(fig, analysis, title or "Class frequency vs IoU")
    else:
        fig = Figure(figsize=(7, max(3.0, 0.3 * len(analysis["rows"]) + 1.2)), dpi=120, layout="constrained")
        FigureCanvasAgg(fig)
        _bars(fig, analysis, title or "Class pixel frequency")
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
