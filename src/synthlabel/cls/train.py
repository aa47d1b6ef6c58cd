"""Classifier training with generated images, as in the published study: mixed batches (a fixed fraction of every
batch generated) or alternating real and generated batches; classic augmentation as a separate switch; the
evaluation accuracy every k epochs (the accuracy curve). Batches are a pure function of (seed, step)."""

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
from synthlabel.data.sample import to_float
from synthlabel.device import Precision, resolve_precision
from synthlabel.errors import ConfigError
from synthlabel.registry import CLASSIFIERS
from synthlabel.runs import seed_everything


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


def generated_count(step: int, mode: str, fraction: float, batch_size: int) -> int:
    """How many images of batch `step` are generated. mixed: round(fraction * batch) in every batch;
    alternating: the whole batch on a share `fraction` of the steps, evenly spread (0.5: real, generated, ...)."""
    if fraction <= 0:
        return 0
    if mode == "mixed":
        return min(batch_size, round(fraction * batch_size))
    if mode == "alternating":
        return batch_size if math.floor((step + 1) * fraction) > math.floor(step * fraction) else 0
    raise ConfigError(f"unknown batch mode {mode!r}; use mixed or alternating")


class BatchComposer:
    """Training batches from real and (optional) generated images; batch `step` depends only on (seed, step)."""

    def __init__(
        self,
        real: ClassSet,
        synthetic: ClassSet | None,
        batch_size: int,
        mode: str = "mixed",
        fraction: float = 0.5,
        seed: int = 0,
    ):
        self.real, self.synthetic, self.batch_size = real, synthetic, batch_size
        self.mode, self.fraction, self.seed = mode, (fraction if synthetic is not None else 0.0), seed
        generated_count(0, mode, self.fraction, batch_size)  # validates the mode

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images [B, C, H, W] float in [-1, 1], labels [B], generated [B] bool), generated images last."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        n_gen = generated_count(step, self.mode, self.fraction, self.batch_size)
        real_idx = torch.randint(len(self.real), (self.batch_size - n_gen,), generator=g)
        images, labels = [self.real.images[real_idx]], [self.real.labels[real_idx]]
        if n_gen:
            gen_idx = torch.randint(len(self.synthetic), (n_gen,), generator=g)
            images.append(self.synthetic.images[gen_idx])
            labels.append(self.synthetic.labels[gen_idx])
        generated = torch.arange(self.batch_size) >= self.batch_size - n_gen
        return to_float(torch.cat(images)), torch.cat(labels), generated


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, precision: Precision, batch: int = 1000) -> torch.Tensor:
    """Class ids [N] for uint8 images [N, C, H, W]."""
    was_training = model.training
    model.eval()
    out = []
    for chunk in images.split(batch):
        x = to_float(chunk).to(precision.device).contiguous(memory_format=torch.channels_last)
        with precision.autocast():
            out.append(model(x).argmax(1).cpu())
    model.train(was_training)
    return torch.cat(out)


def accuracy(model: nn.Module, data: ClassSet, precision: Precision) -> float:
    return float((predict(model, data.images, precision) == data.labels).float().mean())


def per_class_recall(model: nn.Module, data: ClassSet, precision: Precision) -> list[float | None]:
    """Share of each class's images predicted as that class (None for a class without images)."""
    hit = (predict(model, data.images, precision) == data.labels).float()
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


def cosine_lambda(total: int):
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


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
    model = build_classifier(cfg, real).to(precision.device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(total))
    composer = BatchComposer(real, synthetic, cfg.batch_size, mode, fraction, seed)
    result = ClassifierResult(model, total, 0.0)
    start, aug_gen = time.monotonic(), torch.Generator().manual_seed(seed * 1_000_003 + 17)
    model.train()
    for step in range(total):
        images, labels, _ = composer.batch(step)
        if augment:
            images = classic_augment(images, cfg.augment, aug_gen)
        _train_step(model, opt, images, labels, precision)
        sched.step()
        if evaluation is not None and ((step + 1) % eval_every == 0 or step + 1 == total):
            tic = time.monotonic()
            acc = accuracy(model, evaluation, precision)
            result.eval_seconds += time.monotonic() - tic
            result.curve.append({"epoch": round((step + 1) / per_epoch, 3), "step": step + 1, "accuracy": acc})
    result.seconds = time.monotonic() - start
    return result


def _train_step(model: nn.Module, opt, images: torch.Tensor, labels: torch.Tensor, precision: Precision) -> float:
    x = images.to(precision.device).contiguous(memory_format=torch.channels_last)
    with precision.autocast():
        loss = F.cross_entropy(model(x).float(), labels.to(precision.device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()
