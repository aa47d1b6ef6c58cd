"""Objective generator selection without pretrained nets: every candidate (a generator snapshot, per class) is
scored by train-on-synthetic, test-on-real recall (a classifier trained only on the snapshot's images, tested on
the run's real training images) and by sample diversity relative to the real images; the best snapshot is kept,
and a class whose generator scores below the thresholds gets its real images instead of generated ones."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from synthlabel.cls.config import ClassifierConfig, SelectionConfig
from synthlabel.cls.data import ClassSet, concat
from synthlabel.cls.train import per_class_recall, train_classifier
from synthlabel.device import resolve_precision
from synthlabel.eval.generator_metrics import diversity

DIVERSITY_SIDE = 16  # images are area-downsampled to at most this many px a side before distances
DIVERSITY_SAMPLES = 64  # images per class compared pairwise


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean L1 distance per feature between all pairs of (up to DIVERSITY_SAMPLES) uint8 images [N, C, H, W]."""
    images = images[:DIVERSITY_SAMPLES]
    return diversity(images[None], DIVERSITY_SIDE) if len(images) >= 2 else 0.0


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
    pools: Mapping[str, ClassSet], real: ClassSet, cfg: SelectionConfig, classifier: ClassifierConfig, seed: int = 0
) -> dict[str, dict[str, list[float]]]:
    """{candidate: {"recall": [K], "diversity": [K]}} for every candidate pool."""
    return {
        name: {"recall": tstr_recall(pool, real, cfg, classifier, seed), "diversity": diversity_ratio(pool, real)}
        for name, pool in pools.items()
    }


@dataclass
class Selection:
    """choice[k]: the candidate whose images class k gets, or None: class k's generator is dropped (its share of
    generated images falls back to its real images, see `assemble`)."""

    choice: list[str | None]
    scores: dict[str, dict[str, list[float]]]

    @property
    def dropped(self) -> list[int]:
        return [k for k, c in enumerate(self.choice) if c is None]

    def to_json(self) -> dict:
        return {"choice": self.choice, "dropped": self.dropped, "scores": self.scores}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def select(scores: Mapping[str, Mapping[str, list[float]]], cfg: SelectionConfig) -> Selection:
    """Keep, per class, a candidate whose recall >= min_recall and diversity >= min_diversity; drop the class's
    generator when there is none.

    Which candidate: by default the one with the best mean recall over classes (ties: mean diversity, then the
    later name, i.e. the later snapshot) for every class, since ten real images per class are too few to rank
    snapshots class by class; per_class: the best eligible candidate of each class on its own."""
    num_classes = len(next(iter(scores.values()))["recall"])

    def eligible(name: str, k: int) -> bool:
        s = scores[name]
        return s["recall"][k] >= cfg.min_recall and s["diversity"][k] >= cfg.min_diversity

    if cfg.per_class:
        choice = []
        for k in range(num_classes):
            ranked = [(s["recall"][k], s["diversity"][k], n) for n, s in scores.items() if eligible(n, k)]
            choice.append(max(ranked)[2] if ranked else None)
    else:
        best = max((_mean(s["recall"]), _mean(s["diversity"]), n) for n, s in scores.items())[2]
        choice = [best if eligible(best, k) else None for k in range(num_classes)]
    return Selection(choice, {n: dict(s) for n, s in scores.items()})


def assemble(candidates: Mapping[str, ClassSet], choice: list[str | None], real: ClassSet | None = None):
    """The generated images of every kept class from its chosen candidate. A dropped class gets its `real` images
    instead, repeated to the kept classes' count, so class frequencies stay balanced (without `real` it gets
    nothing). None when nothing is left."""
    parts = [candidates[name].of_class(k) for k, name in enumerate(choice) if name is not None]
    per_class = max((len(p) for p in parts), default=0)
    if real is not None and per_class:
        for k in (k for k, name in enumerate(choice) if name is None):
            own = real.of_class(k)
            parts.append(own.subset(torch.arange(per_class) % len(own)))
    return concat(parts) if parts else None
