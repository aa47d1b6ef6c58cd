"""Per-class statistics of bank segments: where the bottom edge lies, how height grows with it (perspective),
what the class stands on (support) and touches (neighbours). Everything is learned from the segments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from synthlabel.synth.segments import Segment

QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
GROUND_SHARE = 0.5  # a class is ground when at least this share of its pixels has nothing labeled below it


@dataclass
class ClassStats:
    """Statistics of one class's segments; quantiles are at `QUANTILE_LEVELS`."""

    class_id: int
    count: int
    area_share: np.ndarray  # [len(QUANTILE_LEVELS)] segment area / image area
    bottom_y: np.ndarray  # [len(QUANTILE_LEVELS)] normalised bottom edge (0 top, 1 bottom)
    bottom_y_mean: float
    bottom_y_std: float
    standing: int  # segments standing on a ground class: the ones position, scale and support are learned from
    support: dict[int, float]  # support class -> share of those segments (-1: nothing labeled below)
    neighbours: dict[int, float]  # class -> mean share of the segments' borders
    height_slope: float  # height / H ~ slope * bottom_y + intercept, fitted on segments not cut by the image
    height_intercept: float
    levels: tuple[float, ...] = field(default=QUANTILE_LEVELS)

    def bottom_y_quantile(self, q: float) -> float:
        """The bottom-edge quantile `q` (interpolated between the stored levels)."""
        return float(np.interp(q, self.levels, self.bottom_y))

    def sample_bottom_y(self, rng: np.random.Generator, low: float = 0.01, high: float = 0.99) -> float:
        """A bottom edge drawn from the learned distribution, between its `low` and `high` quantiles."""
        return self.bottom_y_quantile(float(rng.uniform(low, high)))

    def height_at(self, bottom_y: float) -> float:
        """Expected segment height (share of image height) for a bottom edge at `bottom_y`."""
        return float(self.height_slope * bottom_y + self.height_intercept)

    def usual_supports(self, min_share: float = 0.15) -> set[int]:
        """Classes this class stands on in at least `min_share` of the segments that stand on something."""
        known = {k: v for k, v in self.support.items() if k >= 0}
        total = sum(known.values())
        return {k for k, v in known.items() if total and v / total >= min_share}

    def to_json(self) -> dict:
        return {
            "class_id": self.class_id,
            "count": self.count,
            "standing": self.standing,
            "quantile_levels": list(self.levels),
            "area_share": [float(v) for v in self.area_share],
            "bottom_y": [float(v) for v in self.bottom_y],
            "bottom_y_mean": self.bottom_y_mean,
            "bottom_y_std": self.bottom_y_std,
            "support": {str(k): v for k, v in self.support.items()},
            "neighbours": {str(k): v for k, v in self.neighbours.items()},
            "height_fit": {"slope": self.height_slope, "intercept": self.height_intercept},
        }


def ground_share(segments: Sequence[Segment]) -> float:
    """Share of the segments' pixels that have nothing labeled below them (they reach the image's bottom)."""
    total = sum(s.area for s in segments)
    return sum(s.area for s in segments if s.support_class < 0) / total if total else 0.0


def class_stats(class_id: int, segments: Sequence[Segment], ground: Collection[int] = ()) -> ClassStats:
    """Fit the statistics of one class from its segments (an empty list gives NaN quantiles and count 0).

    Position, scale and support come from the segments standing on a `ground` class when there are enough of
    them: a segment whose lower part is hidden behind another object has a misleading bottom edge.
    """
    n = len(segments)
    area = np.array([s.area / (s.image_size[0] * s.image_size[1]) for s in segments], np.float64)
    standing = [s for s in segments if s.support_class in ground]
    use = standing if len(standing) >= max(2, 0.25 * n) else list(segments)
    bottom = np.array([s.bottom_y for s in use], np.float64)
    support = Counter(s.support_class for s in use)
    slope, intercept = _fit_height(use, ground)
    return ClassStats(
        class_id=int(class_id),
        count=n,
        area_share=_quantiles(area),
        bottom_y=_quantiles(bottom),
        bottom_y_mean=float(bottom.mean()) if n else float("nan"),
        bottom_y_std=float(bottom.std()) if n else float("nan"),
        standing=len(standing),
        support={int(k): v / len(use) for k, v in sorted(support.items())},
        neighbours=_mean_shares([s.neighbours for s in segments]),
        height_slope=slope,
        height_intercept=intercept,
    )


def _quantiles(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, QUANTILE_LEVELS) if values.size else np.full(len(QUANTILE_LEVELS), np.nan)


def _fit_height(segments: Sequence[Segment], ground: Collection[int]) -> tuple[float, float]:
    """Theil-Sen line height_share ~ slope * bottom_y + intercept over segments whose height is not cut by the
    image edge or hidden by a nearer object above them."""
    whole = [s for s in segments if not s.cut_vertically and (s.occluder_above < 0 or s.occluder_above in ground)]
    use = whole if len(whole) >= 2 else list(segments)
    if not use:
        return 0.0, float("nan")
    y = np.array([s.bottom_y for s in use])
    h = np.array([s.height_share for s in use])
    if len(use) < 2 or np.ptp(y) < 1e-6:
        return 0.0, float(h.mean())
    slope, intercept, _, _ = stats.theilslopes(h, y)  # median of pairwise slopes: robust to hidden parts
    return float(slope), float(intercept)


def _mean_shares(dicts: Sequence[dict[int, float]]) -> dict[int, float]:
    total = sum(map(Counter, dicts), Counter())  # shares are positive, so Counter addition drops none
    return {int(k): v / len(dicts) for k, v in sorted(total.items())}
