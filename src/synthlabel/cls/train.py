"""Classifier training with generated images, as in the published study: mixed or alternating real and generated
batches (the segmenter's mixing sampler), classic augmentation as a switch, the evaluation accuracy every k epochs
(the accuracy curve). A task of the supervised trainer; batches are a pure function of (seed, step)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.cls import models  # noqa: F401  (registers the classifiers)
from synthlabel.cls.config import ClassicAugmentConfig, ClassifierConfig
from synthlabel.cls.data import ClassSet
from synthlabel.config import MixConfig, build_config
from synthlabel.device import Precision, resolve_precision
from synthlabel.downstream.mixing import MixedBatches, MixedSampler, Source
from synthlabel.errors import ConfigError
from synthlabel.eval.segmentation import predict
from synthlabel.registry import CLASSIFIERS
from synthlabel.runs import seed_everything
from synthlabel.train.batch import step_generator
from synthlabel.train.supervised import Classification, SupervisedConfig, SupervisedTrainer


def classic_augment(images: torch.Tensor, cfg: ClassicAugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """A random affine map per image [B, C, H, W]: rotation, isotropic scale, translation (+ horizontal flip);
    pixels brought in from outside repeat the border (the background of digits and most photos)."""
    b = images.shape[0]
    u = torch.rand(b, 5, generator=generator)
    angle = torch.deg2rad((u[:, 0] * 2 - 1) * cfg.rotate)
    scale = cfg.scale[0] + u[:, 1] * (cfg.scale[1] - cfg.scale[0])
    shift = (u[:, 2:4] * 2 - 1) * (2 * cfg.translate)  # affine_grid spans [-1, 1]: a side is 2 units
    flip = torch.where((u[:, 4] < 0.5) & cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class ClassicAugment:
    """`classic_augment` as a batch hook. It draws from its own generator, seeded once per run (the study's
    stream: its results stay comparable); its state is part of the training state."""

    def __init__(self, cfg: ClassicAugmentConfig, seed: int):
        self.cfg, self.generator = cfg, step_generator(seed, 17)  # the study's seed of this stream

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        return classic_augment(images, self.cfg, self.generator), labels

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def batch_sampler(
    real: ClassSet, synthetic: ClassSet | None, batch_size: int, steps: int, mode: str = "mixed", fraction: float = 0.5
) -> MixedSampler:
    """The mixing sampler with the study's fixed counts: mixed: round(fraction * batch) generated images in every
    batch; alternate: whole generated batches on a share `fraction` of the steps, evenly spread (0.5: real,
    generated, ...). Generated images come last in a batch."""
    mix = build_config(MixConfig, {"mode": mode, "fraction": fraction}, source="classifier batches")
    sources = [Source("real", real)] + ([Source("generated", synthetic)] if synthetic is not None else [])
    return MixedSampler(sources, mix, batch_size, steps, seed=0, counts="fixed")


def accuracy(model: nn.Module, data: ClassSet, precision: Precision) -> float:
    return float((predict(model, data.images, precision, 1000) == data.labels).float().mean())


def per_class_recall(model: nn.Module, data: ClassSet, precision: Precision) -> list[float | None]:
    """Share of each class's images predicted as that class (None for a class without images)."""
    hit = (predict(model, data.images, precision, 1000) == data.labels).float()
    return [float(hit[data.labels == k].mean()) if (data.labels == k).any() else None for k in range(data.num_classes)]


@dataclass
class ClassifierResult:
    """curve: [{"epoch", "step", "accuracy"}] on the evaluation images (empty without them)."""

    model: nn.Module
    steps: int
    seconds: float
    eval_seconds: float = 0.0
    curve: list[dict] = field(default_factory=list)

    @property
    def final_accuracy(self) -> float | None:
        return self.curve[-1]["accuracy"] if self.curve else None


def build_classifier(cfg: ClassifierConfig, data: ClassSet) -> nn.Module:
    kwargs = {"num_classes": data.num_classes, "channels": data.channels, "image_size": data.image_size}
    try:
        return CLASSIFIERS.create(cfg.name, **kwargs, width=cfg.width, dropout=cfg.dropout)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"classifier: cannot build {cfg.name!r}: {exc}") from exc


@dataclass
class AccuracyCurve:
    """Validation callback of `train_classifier`: the accuracy on `data` into result.curve (and its time)."""

    result: ClassifierResult
    data: ClassSet
    precision: Precision
    per_epoch: int

    def __call__(self, model: nn.Module, step: int) -> dict:
        tic = time.monotonic()
        acc = accuracy(model, self.data, self.precision)
        point = {"epoch": round(step / self.per_epoch, 3), "step": step, "accuracy": acc}
        self.result.eval_seconds += time.monotonic() - tic
        self.result.curve.append(point)
        return point


def train_classifier(
    real: ClassSet,
    cfg: ClassifierConfig,
    synthetic: ClassSet | None = None,
    evaluation: ClassSet | None = None,
    mode: str = "mixed",
    fraction: float = 0.5,
    augment: bool = False,
    seed: int = 0,
    steps: int | None = None,
) -> ClassifierResult:
    """Train a classifier from scratch (AdamW, cosine decay) on `real` plus `synthetic` images.

    steps: None = cfg.epochs epochs of ceil(len(real) / batch_size) steps, with the evaluation accuracy every
    cfg.eval_every epochs and at the end; given, that many steps and one evaluation at the end."""
    precision = resolve_precision(cfg.precision, cfg.device)
    per_epoch = math.ceil(len(real) / cfg.batch_size)
    total = steps if steps is not None else cfg.epochs * per_epoch
    eval_every = total if steps is not None else cfg.eval_every * per_epoch
    seed_everything(seed)
    result = ClassifierResult(build_classifier(cfg, real), total, 0.0)
    batches = MixedBatches(batch_sampler(real, synthetic, cfg.batch_size, total, mode, fraction))
    loop = SupervisedConfig(total, cfg.batch_size, cfg.lr, cfg.weight_decay, "cosine", seed=seed, eval_every=eval_every)
    hooks = [ClassicAugment(cfg.augment, seed)] if augment else []
    curve = AccuracyCurve(result, evaluation, precision, per_epoch) if evaluation is not None else None
    trainer = SupervisedTrainer(result.model, Classification(), batches, loop, precision, hooks, curve)
    start = time.monotonic()
    trainer.fit()
    result.seconds = time.monotonic() - start
    return result
