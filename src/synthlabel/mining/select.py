"""Which frames to queue for labeling: the frames in windows before intervention events (or the whole drive),
ranked by a score, without near-duplicates, spread over what the segmenter sees (greedy k-center on its
features, seeded by the score: Sener & Savarese 2018's core-set, weighted towards uncertain frames)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def event_windows(
    times: Sequence[float], events: Sequence[float], before: float, after: float = 0.0
) -> list[list[int]]:
    """For each event time, the indices of the frames with time in [event - before, event + after] (in frame
    order); frames before an intervention are the ones the model got wrong while the driver still trusted it."""
    if before < 0 or after < 0:
        raise ValueError(f"window bounds must be >= 0, got before={before}, after={after}")
    return [[i for i, t in enumerate(times) if e - before <= t <= e + after] for e in events]


def _standardized(features: torch.Tensor) -> torch.Tensor:
    f = features.double()
    f = f - f.mean(0, keepdim=True)
    return f / f.std(0, keepdim=True).clamp(min=1e-8).nan_to_num(1.0)


def suppress_duplicates(
    order: Sequence[int], features: torch.Tensor, threshold: float
) -> tuple[list[int], dict[int, int]]:
    """Walk `order` (best first) and drop every frame whose feature distance (RMS over standardized features) to
    an already kept frame is below `threshold`. Returns (kept indices in order, {dropped index: the kept frame it
    duplicates})."""
    feats = _standardized(features) if len(features) > 1 else features.double()
    kept: list[int] = []
    dropped: dict[int, int] = {}
    for i in order:
        if kept:
            d = torch.cdist(feats[i : i + 1], feats[kept]).squeeze(0) / feats.shape[1] ** 0.5
            j = int(d.argmin())
            if float(d[j]) < threshold:
                dropped[int(i)] = kept[j]
                continue
        kept.append(int(i))
    return kept, dropped


def k_center(
    candidates: Sequence[int], features: torch.Tensor, scores: torch.Tensor, k: int, weight: float = 1.0
) -> list[int]:
    """Greedy k-center among `candidates`: start from the best-scored frame, then repeatedly take the frame that
    maximizes (distance to the nearest chosen frame) x (1 + weight x its score rank share), so the queue covers
    different scenes and, among similar distances, prefers uncertain frames. Returns up to k indices in pick
    order."""
    candidates = [int(c) for c in candidates]
    if not candidates or k <= 0:
        return []
    feats = _standardized(features)[candidates]
    s = scores.double()[candidates]
    rank = torch.empty_like(s)
    rank[s.argsort()] = torch.arange(len(s), dtype=torch.double) / max(len(s) - 1, 1)  # 0 worst .. 1 best
    first = int(s.argmax())
    chosen = [first]
    nearest = torch.cdist(feats, feats[first : first + 1]).squeeze(1)
    while len(chosen) < min(k, len(candidates)):
        gain = nearest * (1 + weight * rank)
        gain[chosen] = -1
        nxt = int(gain.argmax())
        chosen.append(nxt)
        nearest = torch.minimum(nearest, torch.cdist(feats, feats[nxt : nxt + 1]).squeeze(1))
    return [candidates[i] for i in chosen]


def rank_frames(
    scores: torch.Tensor,
    features: torch.Tensor | None,
    k: int,
    candidates: Sequence[int] | None = None,
    duplicate_threshold: float = 0.0,
    diversity: bool = False,
) -> tuple[list[int], dict[int, int]]:
    """The queue: up to k frame indices from `candidates` (default: all), best score first, near-duplicates
    dropped (`duplicate_threshold` > 0, needs features), or by score-weighted k-center with `diversity`.
    Returns (queue, {dropped duplicate: kept frame})."""
    pool = list(range(len(scores))) if candidates is None else sorted(set(int(c) for c in candidates))
    order = sorted(pool, key=lambda i: (-float(scores[i]), i))
    dropped: dict[int, int] = {}
    if duplicate_threshold > 0:
        if features is None:
            raise ValueError("near-duplicate suppression needs the segmenter's features")
        order, dropped = suppress_duplicates(order, features, duplicate_threshold)
    if diversity:
        if features is None:
            raise ValueError("diversity selection needs the segmenter's features")
        return k_center(order, features, scores, k), dropped
    return order[:k], dropped
