"""The fair training budget: every arm of a comparison trains the same number of steps, chosen on validation where
the real-data baseline has stopped improving (docs/experiments.md, "Budget protocol").

A budget chosen where the baseline is still learning makes any arm that takes real samples out of its batches look
worse than it is (and extra data look useless), so comparisons are only made at a budget the baseline has saturated.
"""

from __future__ import annotations

from collections.abc import Mapping

TOLERANCE = 0.005  # a longer schedule must raise the baseline's val score by more than this (0.5 point) to be chosen


def choose_steps(curve: Mapping[int, float], tolerance: float = TOLERANCE) -> int:
    """The fewest steps whose validation score is within `tolerance` of the best on the curve
    ({steps: val score}, higher is better): where the baseline has stopped improving."""
    if not curve:
        raise ValueError("choose_steps needs at least one (steps, score) point")
    best = max(curve.values())
    return min(st for st, score in curve.items() if score >= best - tolerance)
