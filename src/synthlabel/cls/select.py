"""Objective generator selection without pretrained nets: every candidate (a generator snapshot, per class) is
scored by train-on-synthetic, test-on-real recall (a classifier trained only on the snapshot's images, tested on
the run's real training images) and by sample diversity relative to the real images; per class the best
eligible candidate is kept and classes without one get no generated images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from synthlabel.cls.config import ClassifierConfig, SelectionConfig
from synthlabel.cls.data import ClassSet, concat
from synthlabel.cls.train import per_class_recall, train_classifier
from synthlabel.device import resolve_precision

DIVERSITY_SIDE = 16  # images are area-downsampled to at most this many px a side before distances
DIVERSITY_SAMPLES = 64  # images per class compared pairwise


def _features(images: torch.Tensor) -> torch.Tensor:
    """[N, D] area-downsampled images in [-1, 1] (so the figure reflects shapes, not pixel noise)."""
    h, w = images.shape[-2:]
    scale = min(1.0, DIVERSITY_SIDE / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.adaptive_avg_pool2d(images.float() / 127.5 - 1, size).flatten(1)


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean L1 distance per feature between all pairs of (up to DIVERSITY_SAMPLES) uint8 images [N, C, H, W]."""
    feats = _features(images[:DIVERSITY_SAMPLES]).double()
    if len(feats) < 2:
        return 0.0
    dist = torch.cdist(feats, feats, p=1) / feats.shape[1]
    pairs = torch.triu_indices(len(feats), len(feats), offset=1)
    return float(dist[pairs[0], pairs[1]].mean())


def diversity_ratio(pool: ClassSet, real: ClassSet) -> list[float]:
    """Per class: the generated images' mean pairwise distance over the real images' (0 = one image repeated;
    about 1 = as varied as the real images)."""
    out = []
    for k in range(real.num_classes):
        real_k = mean_pairwise_distance(real.images[real.labels == k])
        gen_k = mean_pairwise_distance(pool.images[pool.labels == k])
        out.append(gen_k / real_k if real_k > 0 else 0.0)
    return out


def tstr_recall(pool: ClassSet, real: ClassSet, cfg: SelectionConfig, classifier: ClassifierConfig, seed: int):
    """Per-class recall on `real` of a classifier trained only on `pool` (train on synthetic, test on real)."""
    tstr_cfg = classifier.model_copy(update={"batch_size": cfg.tstr_batch_size})
    result = train_classifier(pool, tstr_cfg, seed=seed, steps=cfg.tstr_steps)
    precision = resolve_precision(classifier.precision, classifier.device)
    return [r if r is not None else 0.0 for r in per_class_recall(result.model, real, precision)]


def score_candidates(
    candidates: Mapping[str, ClassSet],
    real: ClassSet,
    cfg: SelectionConfig,
    classifier: ClassifierConfig,
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """{candidate: {"recall": [K], "diversity": [K]}} for every candidate pool."""
    return {
        name: {
            "recall": tstr_recall(pool, real, cfg, classifier, seed),
            "diversity": diversity_ratio(pool, real),
        }
        for name, pool in candidates.items()
    }


@dataclass
class Selection:
    """choice[k]: the candidate kept for class k, or None (class k gets no generated images)."""

    choice: list[str | None]
    scores: dict[str, dict[str, list[float]]]

    @property
    def dropped(self) -> list[int]:
        return [k for k, c in enumerate(self.choice) if c is None]

    def to_json(self) -> dict:
        return {"choice": self.choice, "dropped": self.dropped, "scores": self.scores}


def select(scores: Mapping[str, Mapping[str, list[float]]], cfg: SelectionConfig) -> Selection:
    """Per class, the eligible candidate (recall >= min_recall, diversity >= min_diversity) with the best recall
    (ties: the more diverse, then the later name in sorted order, i.e. the later snapshot)."""
    num_classes = len(next(iter(scores.values()))["recall"])
    choice: list[str | None] = []
    for k in range(num_classes):
        eligible = [
            (s["recall"][k], s["diversity"][k], name)
            for name, s in scores.items()
            if s["recall"][k] >= cfg.min_recall and s["diversity"][k] >= cfg.min_diversity
        ]
        choice.append(max(eligible)[2] if eligible else None)
    return Selection(choice, {n: dict(s) for n, s in scores.items()})


def assemble(candidates: Mapping[str, ClassSet], choice: list[str | None]) -> ClassSet | None:
    """The generated images of every kept class, each from its chosen candidate; None when every class is dropped."""
    parts = [candidates[name].of_class(k) for k, name in enumerate(choice) if name is not None]
    return concat(parts) if parts else None
