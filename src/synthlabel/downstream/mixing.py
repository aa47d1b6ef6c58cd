"""Real + extra (synthetic) training data as one deterministic stream of batches for every downstream task: mixed,
alternating or pre-training batches, per-source weights, class-aware (repeat-factor) sampling. Every batch is a pure
function of (seed, step), so a resumed run replays it exactly."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch

from synthlabel.config import MixConfig, SourceConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.data.copy_paste import CopyPaste
from synthlabel.data.datasets import open_dataset
from synthlabel.data.sample import TensorSet, to_float
from synthlabel.data.subset import lowshot_indices
from synthlabel.data.trust import apply_trust, has_trust
from synthlabel.errors import DataError
from synthlabel.runs import log

REAL = 0  # source index of the real training data


class Labeled(Protocol):
    """Images with one target each: a TensorSet (label maps [N, H, W]) or a ClassSet (class ids [N])."""

    images: torch.Tensor  # [N, C, H, W] uint8
    labels: torch.Tensor

    def __len__(self) -> int: ...


@dataclass
class Source:
    """One training source held in memory: name, images + labels at the working size, per-image sampling weights."""

    name: str
    data: Labeled
    weight: float = 1.0
    image_weights: torch.Tensor | None = None  # [N] float; None = uniform


def repeat_factors(labels: torch.Tensor, num_classes: int, threshold: float) -> torch.Tensor:
    """[N] repeat factor per image of labels [N, H, W]: max over its classes of max(1, sqrt(threshold / f_c)),
    f_c = share of images containing class c (LVIS repeat-factor sampling)."""
    n = labels.shape[0]
    present = torch.zeros(n, num_classes, dtype=torch.bool)
    for i in range(n):
        ids = labels[i].unique()
        present[i, ids[(ids >= 0) & (ids < num_classes)]] = True
    f = present.float().mean(0).clamp(min=1e-12)
    r = (threshold / f).sqrt().clamp(min=1.0)  # [K]
    factors = torch.where(present, r[None], torch.ones_like(r)[None]).amax(1)
    return torch.where(present.any(1), factors, torch.ones(n))


class MixedSampler:
    """Which (source, image) pairs make up the batch of each step.

    sources[0] is the real data; the others are extra sources. counts: "stochastic" (the segmenter's default): a
    mixed batch holds floor or ceil of fraction * batch extra samples (exact on average) and each picks its source
    by weight; "fixed" (the classification study's rule): round(fraction * batch) every batch, split over the
    sources by weight without randomness."""

    def __init__(
        self,
        sources: Sequence[Source],
        mix: MixConfig,
        batch_size: int,
        steps: int,
        seed: int,
        counts: Literal["stochastic", "fixed"] = "stochastic",
    ):
        if not sources or len(sources[REAL].data) == 0:
            raise DataError("no real training images to sample from")
        self.sources, self.mix, self.batch_size, self.steps, self.seed = list(sources), mix, batch_size, steps, seed
        self.counts = counts
        extra = torch.tensor([s.weight for s in self.sources[1:]], dtype=torch.float64)
        self.extra_weights = extra / extra.sum() if len(extra) else extra

    @property
    def has_extra(self) -> bool:
        if len(self.sources) < 2:
            return False
        return self.mix.pretrain > 0 if self.mix.mode == "pretrain" else self.mix.fraction > 0

    def synthetic_count(self, step: int, generator: torch.Generator) -> int:
        """How many samples of this step's batch come from the extra sources."""
        if not self.has_extra:
            return 0
        b, r = self.batch_size, self.mix.fraction
        if self.mix.mode == "mixed" and self.counts == "fixed":
            return min(b, round(r * b))
        if self.mix.mode == "mixed":  # stochastic rounding keeps the share exact on average for any batch size
            base = math.floor(r * b)
            return base + int(torch.rand(1, generator=generator).item() < r * b - base)
        if self.mix.mode == "alternate":  # synthetic when floor((step+1) r) advances: exact share, r=0.5 alternates
            return b if math.floor((step + 1) * r) > math.floor(step * r) else 0
        return b if step < round(self.mix.pretrain * self.steps) else 0

    def draw(self, step: int, generator: torch.Generator) -> list[tuple[int, int]]:
        """[(source index, image index)] * batch_size for `step`; real samples first, then by source."""
        n_extra = self.synthetic_count(step, generator)
        picks = [(REAL, i) for i in self._indices(self.sources[REAL], self.batch_size - n_extra, generator)]
        for s, count in self._split(n_extra, generator):
            picks += [(s, i) for i in self._indices(self.sources[s], count, generator)]
        return picks

    def _split(self, n_extra: int, generator: torch.Generator) -> list[tuple[int, int]]:
        """[(extra source index, samples)] sharing n_extra by the source weights."""
        if n_extra == 0:
            return []
        if self.counts == "fixed":  # largest remainders: exact shares, no randomness
            share = self.extra_weights * n_extra
            counts = share.floor().long()
            counts[torch.argsort(counts - share, stable=True)[: n_extra - int(counts.sum())]] += 1
            return [(s + 1, int(c)) for s, c in enumerate(counts) if c > 0]
        which = torch.multinomial(self.extra_weights, n_extra, replacement=True, generator=generator) + 1
        return [(s, int((which == s).sum())) for s in sorted(set(which.tolist()))]

    @staticmethod
    def _indices(source: Source, count: int, generator: torch.Generator) -> list[int]:
        if count == 0:
            return []
        if source.image_weights is None:
            return torch.randint(len(source.data), (count,), generator=generator).tolist()
        return torch.multinomial(source.image_weights.double(), count, replacement=True, generator=generator).tolist()

    def gather(self, picks: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(uint8 images [B, C, H, W], labels [B, ...], source index [B]) for the picks of `draw`."""
        images, labels = [], []
        for s, group in itertools.groupby(picks, key=lambda pick: pick[0]):
            index = torch.tensor([i for _, i in group])
            images.append(self.sources[s].data.images[index])
            labels.append(self.sources[s].data.labels[index])
        return torch.cat(images), torch.cat(labels), torch.tensor([s for s, _ in picks])


def real_exposure(mix: MixConfig, batch_size: int, steps: int, has_extra: bool | None = None, fixed: bool = False):
    """Real samples a schedule of steps x batch_size draws (exact on average) under `mix`: what an arm's batches
    leave to real data at the same budget as every other arm of a comparison. has_extra: whether extra sources
    take part (default: mix lists sources and gives them a share)."""
    b = batch_size
    if has_extra is None:
        has_extra = bool(mix.sources) and (mix.pretrain > 0 if mix.mode == "pretrain" else mix.fraction > 0)
    if not has_extra:
        return float(b * steps)
    if mix.mode == "mixed":
        extra = min(b, round(mix.fraction * b)) if fixed else mix.fraction * b
        return float((b - extra) * steps)
    if mix.mode == "alternate":
        r = mix.fraction
        synthetic_steps = sum(math.floor((s + 1) * r) > math.floor(s * r) for s in range(steps))
        return float(b * (steps - synthetic_steps))
    return float(b * (steps - round(mix.pretrain * steps)))


def read_keep_file(path: str | Path) -> set[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: keep file not found; write it with `synthlabel filter` or remove `keep`")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def load_source(cfg: SourceConfig, spec: ClassSpec, size: tuple[int, int] | None, seed: int) -> Source:
    """Open an extra source, harmonize its labels to `spec`, apply keep/images, load it at `size`."""
    name = cfg.name or Path(cfg.path).name
    ds = open_dataset(cfg.path, cfg.split, cfg.layout, class_map=cfg.class_map)
    if ds.out_spec.names != spec.names:
        raise DataError(
            f"{cfg.path}: its classes {ds.out_spec.names} differ from the training data's {spec.names}; "
            "give the source a class_map that maps its labels into the training label set"
        )
    indices = list(range(len(ds)))
    if cfg.keep:
        keep = read_keep_file(cfg.keep)
        indices = [i for i in indices if ds.records[i].image.name in keep]
    if cfg.images is not None and cfg.images < len(indices):  # nested: the first n of one permutation by seed
        indices = [indices[j] for j in lowshot_indices(len(indices), cfg.images, seed)]
    elif cfg.images is not None and cfg.images > len(indices):
        log.warning("source %s: asked for %d images, it has %d (after keep); using all", name, cfg.images, len(indices))
    if not indices:
        raise DataError(f"{cfg.path}: no images left in source {name!r} (check keep / images)")
    data = ds.subset(indices).load(size, desc=f"load source {name}")
    log.info("source %s: %d images from %s", name, len(data), cfg.path)
    if cfg.trust and has_trust(ds):
        share = apply_trust(ds, data.labels, indices, spec.ignore_id)
        log.info("source %s: trust maps ignore %.1f%% of its labeled pixels", name, 100 * share)
    return Source(name, data, cfg.weight)


def build_sources(real: TensorSet, spec: ClassSpec, mix: MixConfig, size, seed: int) -> list[Source]:
    """[real, *extra] with class-aware image weights when mix.class_aware > 0."""
    sources = [Source("real", real)] + [load_source(c, spec, size, seed) for c in mix.sources]
    if mix.class_aware > 0:
        for s in sources:
            s.image_weights = repeat_factors(s.data.labels, spec.num_classes, mix.class_aware)
    return sources


class MixedBatches:
    """The batches of every downstream task: real and extra samples by the mixing sampler, as float images
    [B, C, H, W] in [-1, 1], their labels, and which samples are extra; copy-paste (segmentation) goes into the
    samples its `onto` names (real by default; extra images are then left as rendered)."""

    def __init__(self, sampler: MixedSampler, copy_paste: CopyPaste | None = None):
        self.sampler, self.copy_paste = sampler, copy_paste

    def __call__(self, step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, labels, [B] bool: True for samples of an extra source)."""
        picks = self.sampler.draw(step, generator)
        images, labels, source = self.sampler.gather(picks)
        real = source == REAL
        if self.copy_paste is not None:
            onto = self.copy_paste.cfg.onto
            chosen = real if onto == "real" else ~real if onto == "synthetic" else torch.ones_like(real)
            if chosen.any():  # a real sample never receives its own segments
                origin = [i if s == REAL else -1 for (s, i), c in zip(picks, chosen.tolist(), strict=True) if c]
                images[chosen], labels[chosen] = self.copy_paste(images[chosen], labels[chosen], generator, origin)
        return to_float(images), labels, ~real
