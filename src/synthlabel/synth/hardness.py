"""Hard-map resampling (after FreeMask's hardness-aware re-sampling): render more images of the label maps that hold
what the real-data segmenter gets wrong. A class's hardness is 1 - its validation IoU (the same signal that aims
recomposition, `Targets.from_iou`); a map's hardness is the mean hardness of the classes present in it, each class
counted once, so a map with a small pedestrian counts that pedestrian as much as its road. Maps are then ranked by
hardness and the extra renders shared out in proportion to the rank (FreeMask's re-sampling gives the i-th easiest
of N masks about 1 + 20 i / N renders): most maps hold most classes, so hardness itself varies little between
maps, and shares proportional to it would hardly differ; the rank spreads them from none to twice the mean. At
least `minimum` renders per map; the counts sum exactly to the total asked for."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import SegDataset


def class_hardness(per_class_iou: Mapping[str, float | None], spec: ClassSpec) -> np.ndarray:
    """[K] 1 - IoU per class (by name); a class without an IoU (absent from validation) gets the mean hardness."""
    known = [1.0 - v for v in per_class_iou.values() if v is not None]
    fallback = float(np.mean(known)) if known else 1.0
    return np.array(
        [1.0 - per_class_iou[n] if per_class_iou.get(n) is not None else fallback for n in spec.names], dtype=np.float64
    )


def map_hardness(label_maps: Sequence[np.ndarray], hardness: np.ndarray) -> np.ndarray:
    """[N] mean class hardness over the classes present in each map (0 for a map with no labeled pixel)."""
    k = len(hardness)
    out = np.zeros(len(label_maps))
    for i, m in enumerate(label_maps):
        present = np.unique(m)
        present = present[(present >= 0) & (present < k)]
        out[i] = hardness[present].mean() if len(present) else 0.0
    return out


def render_counts(scores: np.ndarray, total: int, minimum: int = 1) -> list[int]:
    """Renders per map: `minimum` each, the rest shared in proportion to `scores` by largest remainders (ties to the
    earlier map), so the counts sum to `total` and follow the scores exactly as far as integers allow."""
    n = len(scores)
    if total < minimum * n:
        raise ValueError(f"{total} renders cannot give {n} maps at least {minimum} each")
    spare = total - minimum * n
    weights = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    share = weights / weights.sum() * spare if weights.sum() > 0 else np.full(n, spare / max(n, 1))
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: spare - int(counts.sum())]] += 1
    return [int(c) + minimum for c in counts]


def hardness_rank(scores: np.ndarray) -> np.ndarray:
    """[N] 1 for the easiest map .. N for the hardest (ties share their mean rank)."""
    return rankdata(np.asarray(scores, dtype=np.float64), method="average")


def hard_map_counts(dataset: SegDataset, per_class_iou: Mapping[str, float | None], k: int, extra: float) -> list[int]:
    """Renders per label map of `dataset`: k each, plus round(extra x N) more shared out by hardness rank."""
    maps = [dataset.read_label(i) for i in range(len(dataset))]
    scores = map_hardness(maps, class_hardness(per_class_iou, dataset.out_spec))
    return render_counts(hardness_rank(scores), k * len(maps) + round(extra * len(maps)), minimum=k)
