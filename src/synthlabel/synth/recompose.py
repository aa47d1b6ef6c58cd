"""Label-map recomposition: new label maps from existing ones, by inserting bank segments at places that follow
their class's learned position, scale and support, and by mixing regions of two maps.

Occlusion follows one general rule: an object whose bottom edge is lower in the image is nearer, so an inserted
segment never paints over a pixel of a nearer object (nor over ignore pixels); ground classes span all depths
and are always painted over.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from synthlabel.checkpoint import atomic_write_text
from synthlabel.data.datasets import SegDataset
from synthlabel.errors import DataError
from synthlabel.synth.class_bank import ClassBank
from synthlabel.synth.segments import Segment, check_label_map, footing_margin, support_band
from synthlabel.synth.stats import ClassStats
from synthlabel.synth.targets import Targets

_PROTECTED = np.iinfo(np.int64).max  # depth of ignore pixels: nothing is ever painted over them
_SEGMENTS_TRIED = 3  # segments of a class that may find no place in a map before the class is skipped there


class Recomposed(NamedTuple):
    """One recomposed label map [H, W] int64, the operations that made it, and the index of its source map."""

    label_map: np.ndarray
    ops: list[dict]
    source: int


def class_counts(label_map: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """[K] pixel count per class of one label map [H, W] (ignore pixels are not counted)."""
    flat = label_map.ravel()
    return np.bincount(flat[flat != ignore_index], minlength=num_classes)[:num_classes]


def class_fractions(maps: Sequence[np.ndarray], num_classes: int, ignore_index: int) -> np.ndarray:
    """[K] share of labeled (non-ignore) pixels per class over label maps [H, W] each."""
    counts = sum((class_counts(m, num_classes, ignore_index) for m in maps), np.zeros(num_classes, np.int64))
    return counts / max(int(counts.sum()), 1)


def occlusion_depth(label_map: np.ndarray, ground: Collection[int], ignore_index: int) -> np.ndarray:
    """[H, W] int64 'nearness' of each pixel: the row below the bottom of the object it belongs to.

    The bottom is taken locally (lowest pixel of the vertical run of its class, maximised over a few columns of
    the same class), so a facade or fence that recedes along the street has a near end and a far end. Ground
    pixels get -1 (never in front), ignore pixels the maximum (always in front).
    """
    height, width = label_map.shape
    run_end = np.empty((height, width), np.int64)  # exclusive bottom row of each pixel's vertical class run
    run_end[-1] = height
    for y in range(height - 2, -1, -1):
        run_end[y] = np.where(label_map[y] == label_map[y + 1], run_end[y + 1], y + 1)
    depth = np.full((height, width), -1, np.int64)
    radius = max(1, round(0.015 * width))  # so a torso between two legs is as near as the feet
    for c in np.unique(label_map):
        if c == ignore_index or c in ground:
            continue
        own = label_map == c
        spread = ndimage.maximum_filter1d(np.where(own, run_end, -1), size=2 * radius + 1, axis=1)
        depth[own] = spread[own]
    depth[label_map == ignore_index] = _PROTECTED
    return depth


def scale_mask(mask: np.ndarray, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a bool mask [h, w] to `height` rows (width in proportion, at least 1), cropped
    to its content; the first and last rows and columns are always sampled, so feet stay feet."""
    h, w = mask.shape
    width = max(1, round(w * height / h))
    rows = np.rint(np.linspace(0, h - 1, height)).astype(int)
    cols = np.rint(np.linspace(0, w - 1, width)).astype(int)
    out = mask[rows][:, cols]
    if not out.any():
        return out[:0, :0]
    ys, xs = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
    return out[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]


def insert_segment(
    label_map: np.ndarray,
    segment: Segment,
    bank: ClassBank,
    rng: np.random.Generator,
    depth: np.ndarray | None = None,
    max_tries: int = 20,
    min_support: float = 0.5,
    min_visible: float = 0.5,
    max_scale: float = 1.5,
    min_context: float = 0.6,
) -> tuple[np.ndarray, dict] | None:
    """Paint `segment` into a copy of `label_map` [H, W] at a place consistent with its class's statistics.

    Each try draws a bottom edge from the class's bottom_y distribution, scales the mask to the learned height
    at that edge, and picks a column where at least `min_support` of the pixels just below the edge are a usual
    support class of the class and the footing (classes below, widened a little) overlaps the segment's original
    footing by at least `min_context` (a pole from a kerb goes to a kerb); the segment must stay at least
    `min_visible` visible behind nearer objects.
    Draws needing a scale beyond 1/`max_scale`..`max_scale` are rejected (resampled masks of thin or small
    objects degrade). `depth` is `occlusion_depth` of the map (computed when None). Returns (new map, op) or None.
    """
    stats = bank.stats(segment.class_id)
    height, width = label_map.shape
    if depth is None:
        depth = occlusion_depth(label_map, bank.ground_classes, bank.spec.ignore_id)
    ratio = _size_ratio(segment, stats)
    supports = np.array(sorted(stats.usual_supports()), np.int64)
    for _ in range(max_tries):
        y1 = int(np.clip(round(stats.sample_bottom_y(rng) * height), 1, height))
        rows = max(2, round(stats.height_at(y1 / height) * ratio * height))
        if not 1 / max_scale <= rows / segment.mask.shape[0] <= max_scale:
            continue
        mask = scale_mask(segment.mask, rows)
        if mask.size == 0 or mask.shape[1] > width:
            continue
        ok = _supported(label_map, mask, y1, supports, min_support)
        ok &= _same_footing(label_map, mask, y1, segment, bank.spec.ignore_id, min_context)
        for x0 in rng.permutation(np.flatnonzero(ok))[:4]:
            placed = _place(label_map, depth, mask, y1, int(x0), segment.class_id, min_visible)
            if placed is not None:
                new_map, bbox, painted = placed
                return new_map, _op(bank, segment, bbox, y1 / height, mask.shape[0] / segment.mask.shape[0], painted)
    return None


def _size_ratio(segment: Segment, stats: ClassStats) -> float:
    """How much bigger this segment is than its class's trend at its own bottom edge (kept within 0.75..1.33)."""
    expected = stats.height_at(segment.bottom_y)
    if not segment.whole or not expected > 0:
        return 1.0
    return float(np.clip(segment.height_share / expected, 0.75, 1.33))


def _band(label_map: np.ndarray, y1: int) -> np.ndarray:
    """The rows just below a bottom edge at y1 (the last row when the edge is the image's bottom)."""
    band = support_band(label_map.shape[0], y1)
    return label_map[band] if band.start < band.stop else label_map[-1:]


def _supported(label_map, mask, y1, supports, min_support) -> np.ndarray:
    """[W - w + 1] bool per left column x0: the pixels below the mask's bottom-row pixels are mostly supports."""
    starts = np.arange(label_map.shape[1] - mask.shape[1] + 1)
    if supports.size == 0:
        return np.ones(starts.size, bool)
    share = np.isin(_band(label_map, y1), supports).mean(0)  # [W]
    feet = np.flatnonzero(mask[-1])
    return share[starts[:, None] + feet[None, :]].mean(1) >= min_support


def _same_footing(label_map, mask, y1, segment: Segment, ignore_index: int, min_context: float) -> np.ndarray:
    """[W - w + 1] bool per left column x0: the class shares below the placed mask (widened by the footing margin)
    overlap the segment's original footing (histogram intersection) by at least `min_context`."""
    width = label_map.shape[1]
    starts = np.arange(width - mask.shape[1] + 1)
    if not segment.footing:
        return np.ones(starts.size, bool)
    under = _band(label_map, y1)
    valid = (under != segment.class_id) & (under != ignore_index)
    margin = footing_margin(mask.shape[0])
    lo, hi = np.maximum(starts - margin, 0), np.minimum(starts + mask.shape[1] + margin, width)

    def window_sum(per_column: np.ndarray) -> np.ndarray:
        cum = np.concatenate([[0], np.cumsum(per_column)])
        return cum[hi] - cum[lo]

    total = np.maximum(window_sum(valid.sum(0)), 1)
    overlap = sum(np.minimum(window_sum((under == k).sum(0)) / total, q) for k, q in segment.footing.items())
    return overlap >= min_context


def _place(label_map, depth, mask, y1, x0, class_id, min_visible):
    """Paint where nothing nearer is in the way; None when less than `min_visible` of the mask would show or when
    it would come within a small gap of a segment of its own class (they would merge into one blob or a fence)."""
    top = y1 - mask.shape[0]
    visible_mask = mask[max(0, -top) :]  # rows above the image are cut
    y0 = max(0, top)
    window = (slice(y0, y1), slice(x0, x0 + mask.shape[1]))
    paint = visible_mask & (depth[window] <= y1)
    hidden = paint.sum() < min_visible * visible_mask.sum()
    if paint.sum() == 0 or hidden or _near_own(label_map, paint, y0, x0, class_id):
        return None
    new_map = label_map.copy()
    new_map[window][paint] = class_id
    return new_map, (y0, x0, y1, x0 + mask.shape[1]), int(paint.sum())


def _near_own(label_map: np.ndarray, paint: np.ndarray, y0: int, x0: int, class_id: int) -> bool:
    """Whether `paint` placed at (y0, x0), grown by a gap of a tenth of its height (at least 1 pixel), covers or
    meets a pixel of `class_id`."""
    gap = max(1, round(0.1 * paint.shape[0]))
    grown = ndimage.binary_dilation(np.pad(paint, gap), structure=np.ones((3, 3), bool), iterations=gap)
    height, width = label_map.shape
    ya, xa = y0 - gap, x0 - gap
    cy, cx = max(0, -ya), max(0, -xa)  # crop where the grown mask leaves the image
    yb, xb = min(height, ya + grown.shape[0]), min(width, xa + grown.shape[1])
    grown = grown[cy : cy + yb - max(ya, 0), cx : cx + xb - max(xa, 0)]
    return bool((label_map[max(ya, 0) : yb, max(xa, 0) : xb][grown] == class_id).any())


def _op(bank: ClassBank, segment: Segment, bbox, bottom_y: float, scale: float, painted: int) -> dict:
    return {
        "op": "insert",
        "class_id": segment.class_id,
        "class": bank.spec.names[segment.class_id],
        "segment": {"source": segment.source, "file": segment.source_file, "bbox": list(segment.bbox)},
        "bbox": [int(v) for v in bbox],
        "bottom_y": float(bottom_y),
        "scale": float(scale),
        "pixels": painted,
    }


def mix_maps(map_a: np.ndarray, map_b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Left part of one map + right part of the other [H, W], cut at a column in the middle half where the two
    maps agree most (so the seam rarely cuts an object or a horizon step). Returns (new map, op dict)."""
    if map_a.shape != map_b.shape:
        raise DataError(f"cannot mix label maps of shapes {map_a.shape} and {map_b.shape}; resize them first")
    width = map_a.shape[1]
    if width < 2:
        return map_a.copy(), {"op": "mix", "cut_x": width, "left": "a"}
    disagree = (map_a != map_b).mean(0)  # [W]
    cuts = np.arange(max(1, width // 4), max(2, 3 * width // 4 + 1))
    cost = disagree[cuts - 1] + disagree[np.minimum(cuts, width - 1)] + rng.uniform(0, 1e-3, cuts.size)
    cut = int(cuts[np.argmin(cost)])
    left_a = bool(rng.random() < 0.5)
    left, right = (map_a, map_b) if left_a else (map_b, map_a)
    out = np.concatenate([left[:, :cut], right[:, cut:]], axis=1)
    return out, {"op": "mix", "cut_x": cut, "left": "a" if left_a else "b"}


def recompose(
    label_maps: Sequence[np.ndarray],
    bank: ClassBank,
    targets: Targets,
    rng_seed: int = 0,
    n_out: int | None = None,
    max_inserts_per_map: int = 16,
    mix_prob: float = 0.0,
) -> list[Recomposed]:
    """Recompose `n_out` label maps (default one per input map [H, W]), inserting segments of the classes
    furthest below their target share until the running shares over the maps produced so far reach the targets.

    Map i starts from input i mod N (mixed with a random other map with probability `mix_prob`). Maps that could
    not host a class are made up for by a second pass over all maps with their unused insert budget.
    Deterministic for a given seed.
    """
    maps = [check_label_map(m, bank.spec, i) for i, m in enumerate(label_maps)]
    if not maps:
        raise DataError("recompose needs at least one label map")
    k, ignore = bank.spec.num_classes, bank.spec.ignore_id
    goal = targets.resolve(class_fractions(maps, k, ignore), bank.object_classes, bank.spec)
    total = np.zeros(k, np.int64)
    out = []
    for i in range(len(maps) if n_out is None else n_out):
        rng = np.random.default_rng([rng_seed, i])
        source = i % len(maps)
        current, ops = maps[source].copy(), []
        if len(maps) > 1 and rng.random() < mix_prob:
            partner = int((source + rng.integers(1, len(maps))) % len(maps))
            current, op = mix_maps(current, maps[partner], rng)
            ops.append({**op, "partner": partner})
        current = _fill(current, bank, goal, total, rng, max_inserts_per_map, ops)
        total += class_counts(current, k, ignore)
        out.append(Recomposed(current, ops, source))
    for i, item in enumerate(out):  # top-up pass
        if _met(goal, total):
            break
        budget = max_inserts_per_map - sum(op["op"] == "insert" for op in item.ops)
        others = total - class_counts(item.label_map, k, ignore)
        current = _fill(item.label_map, bank, goal, others, np.random.default_rng([rng_seed, i, 1]), budget, item.ops)
        total = others + class_counts(current, k, ignore)
        out[i] = Recomposed(current, item.ops, item.source)
    return out


def recompose_dataset(
    dataset: SegDataset,
    bank: ClassBank,
    targets: Targets,
    n_out: int | None = None,
    seed: int = 0,
    mix_prob: float = 0.0,
    ops_file: str | Path | None = None,
) -> list[Recomposed]:
    """`recompose` the label maps of a split (in record order): the recomposition of both `synthlabel synth --maps
    recomposed` and `synthlabel run`. With `ops_file`, each map's operations are written there, one JSON line each."""
    maps = [dataset.read_label(i) for i in range(len(dataset))]
    made = recompose(maps, bank, targets, rng_seed=seed, n_out=n_out, mix_prob=mix_prob)
    if ops_file is not None:
        atomic_write_text(Path(ops_file), "".join(json.dumps(m.ops) + "\n" for m in made))
    return made


def _met(goal: dict[int, float], counts: np.ndarray) -> bool:
    share = counts / max(int(counts.sum()), 1)
    return all(share[c] >= g for c, g in goal.items())


def _fill(label_map, bank: ClassBank, goal: dict[int, float], others, rng, budget: int, ops: list) -> np.ndarray:
    """Insert up to `budget` segments into one map while a target class is below its share of the pixels of this
    map plus `others` ([K] counts of the other maps); appends an op per insert."""
    k, ignore = bank.spec.num_classes, bank.spec.ignore_id
    depth = occlusion_depth(label_map, bank.ground_classes, ignore)
    misses: dict[int, int] = {}
    inserted = 0
    while inserted < budget:
        counts = others + class_counts(label_map, k, ignore)
        share = counts / max(int(counts.sum()), 1)
        behind = {c: (g - share[c]) / g for c, g in goal.items() if share[c] < g and misses.get(c, 0) < _SEGMENTS_TRIED}
        if not behind:
            break
        c = max(behind, key=lambda key: (behind[key], -key))
        pool = _pool(bank, c)
        index = int(pool[rng.integers(len(pool))])
        result = insert_segment(label_map, bank.segments(c)[index], bank, rng, depth=depth)
        if result is None:  # this segment found no place here: try others of the class before giving up
            misses[c] = misses.get(c, 0) + 1
            continue
        new_map, op = result
        depth[new_map != label_map] = op["bbox"][2]  # an inserted object is as near as its own bottom edge
        label_map = new_map
        ops.append({**op, "segment_index": index})
        inserted += 1
    return label_map


def _pool(bank: ClassBank, class_id: int) -> list[int]:
    """Indices of the segments worth pasting: whole ones standing on the ground if any, else all of the class."""
    segs = bank.segments(class_id)
    whole = [i for i, s in enumerate(segs) if s.whole and s.support_class in bank.ground_classes]
    return whole or list(range(len(segs)))
