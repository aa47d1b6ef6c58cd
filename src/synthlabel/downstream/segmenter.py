"""Supervised segmenter training (cross-entropy, AdamW + poly decay, classic augmentation) and evaluation.

Resumable: batches and augmentation are drawn from a generator seeded by (seed, step), and the whole training
state (weights, optimizer, scheduler, RNG, step) is checkpointed together, so a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from synthlabel import checkpoint as ckpt
from synthlabel.config import SegConfig, to_dict
from synthlabel.data.classes import ClassSpec
from synthlabel.data.copy_paste import CopyPaste
from synthlabel.data.sample import TensorSet, to_float
from synthlabel.data.transforms import PairedAugment
from synthlabel.device import Precision, resolve_precision
from synthlabel.downstream.mixing import REAL, MixedSampler, Source
from synthlabel.eval.segmentation import ConfusionMatrix
from synthlabel.registry import SEGMENTERS
from synthlabel.runs import Run, log, progress, seed_everything


def class_weights(labels: torch.Tensor, num_classes: int, mode: str) -> torch.Tensor | None:
    """Loss weights from label frequencies, normalised so the average pixel weight is 1 (capped at 10x)."""
    if mode == "none":
        return None
    valid = labels[(labels >= 0) & (labels < num_classes)]
    freq = torch.bincount(valid.flatten(), minlength=num_classes).double()
    freq = freq / freq.sum().clamp(min=1)
    present = freq > 0
    if mode == "inv_sqrt_freq":
        w = torch.where(present, freq.clamp(min=1e-12).rsqrt(), torch.zeros_like(freq))
    elif mode == "median_freq":
        w = torch.where(present, freq[present].median() / freq.clamp(min=1e-12), torch.zeros_like(freq))
    else:
        raise ValueError(f"unknown class weighting {mode!r}")
    w = w / (w * freq).sum()
    w = w.clamp(max=10.0)
    return torch.where(present, w, w[present].max()).float()


def poly_lambda(total: int, warmup: int, power: float) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup)) ** power

    return f


def make_optimizer(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.Optimizer:
    try:  # fused AdamW is one kernel per step; fall back where this torch/device lacks it
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_segmenter(name: str, num_classes: int, **kwargs) -> torch.nn.Module:
    return SEGMENTERS.create(name, num_classes=num_classes, **kwargs)


def save_segmenter(
    directory: Path, model: torch.nn.Module, cfg: SegConfig, spec: ClassSpec, size: tuple[int, int] | None
) -> Path:
    model_cfg = {**to_dict(cfg.model), "num_classes": spec.num_classes}
    return ckpt.save_model(
        directory,
        cfg.model.name,
        model_cfg,
        {"model": model},
        extra={"class_spec": spec.to_json(), "size": list(size) if size else None},
    )


def load_segmenter(directory: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a segmenter from its model directory; returns (model in eval mode, config.json dict)."""
    meta = ckpt.read_model_config(directory)
    kwargs = {k: v for k, v in meta["config"].items() if k not in ("name", "num_classes")}
    model = build_segmenter(meta["name"], meta["config"]["num_classes"], **kwargs)
    ckpt.load_weights(directory, "model", model)
    return model.eval(), meta


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, precision: Precision) -> torch.Tensor:
    """images [B, 3, H, W] float in [-1, 1] -> class ids [B, H, W]."""
    x = images.to(precision.device).contiguous(memory_format=torch.channels_last)
    with precision.autocast():
        return model(x).argmax(1)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: TensorSet,
    spec: ClassSpec,
    precision: Precision | None = None,
    batch_size: int = 16,
    desc: str = "eval",
) -> dict:
    """Dataset-level confusion matrix over `data` -> metrics dict (see eval.segmentation)."""
    precision = precision or resolve_precision("auto", "auto")
    was_training = model.training
    model.eval().to(precision.device)
    cm = ConfusionMatrix(spec.num_classes, spec.ignore_index)
    for i in progress(range(0, len(data), batch_size), desc=desc):
        images = to_float(data.images[i : i + batch_size])
        cm.update(predict(model, images, precision).cpu(), data.labels[i : i + batch_size])
    model.train(was_training)
    return cm.compute(spec.names)


@dataclass
class TrainResult:
    model_dir: Path
    val: dict | None
    seconds: float
    steps: int


class SegTrainer:
    """One training run of a segmenter: state, step, checkpoint, evaluation as separate methods."""

    def __init__(
        self,
        cfg: SegConfig,
        train: TensorSet,
        spec: ClassSpec,
        run: Run,
        val: TensorSet | None = None,
        sources: list[Source] | None = None,
    ):
        """sources: [real, *extra] from `mixing.build_sources` (default: the real `train` set alone)."""
        self.cfg, self.train_set, self.val_set, self.spec, self.run = cfg, train, val, spec, run
        t = cfg.train
        self.precision = resolve_precision(t.precision, t.device)
        seed_everything(t.seed)  # the initial weights are part of the run's seed
        self.model = build_segmenter(
            cfg.model.name, spec.num_classes, width=cfg.model.width, depth=cfg.model.depth, dropout=cfg.model.dropout
        ).to(self.precision.device)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model.parameters(), t.lr, t.weight_decay, self.precision.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, poly_lambda(t.steps, t.warmup_steps, t.poly_power)
        )
        weights = class_weights(train.labels, spec.num_classes, t.class_weights)
        self.weights = weights.to(self.precision.device) if weights is not None else None
        aug = t.augment
        self.augment = PairedAugment(aug.flip, aug.scale, aug.jitter, spec.ignore_index) if aug.enabled else None
        self.copy_paste = CopyPaste(train, spec, t.copy_paste) if t.copy_paste.enabled else None
        if self.copy_paste is not None:
            log.info(
                "copy-paste: %d segments of %s",
                len(self.copy_paste),
                [spec.names[c] for c in self.copy_paste.class_ids],
            )
        self.sampler = MixedSampler(sources or [Source("real", train)], cfg.mix, t.batch_size, t.steps, t.seed)
        self.step = 0
        self.state_path = run.path / "train_state.pt"
        self.model_dir = run.path / "model"

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of `step`: a pure function of (seed, step), so resuming replays the same data."""
        g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + step)
        picks = self.sampler.draw(step, g)
        images, labels, source = self.sampler.gather(picks)
        real = source == REAL
        if self.copy_paste is not None and real.any():  # synthetic images are left as rendered
            origin = [i for s, i in picks if s == REAL]
            images[real], labels[real] = self.copy_paste(images[real], labels[real], g, origin)
        images = to_float(images)
        if self.augment is not None:
            images, labels = self.augment(images, labels, g)
        return images, labels

    def train_step(self, step: int) -> float:
        images, labels = self.batch(step)
        dev = self.precision.device
        images = images.to(dev).contiguous(memory_format=torch.channels_last)
        with self.precision.autocast():
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels.to(dev), weight=self.weights, ignore_index=self.spec.ignore_index)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
        }

    def save(self) -> None:
        save_segmenter(self.model_dir, self.model, self.cfg, self.spec, self.cfg.data.size)
        ckpt.save_state(self.state_path, self.state_dict())

    def restore(self) -> bool:
        if not self.state_path.is_file():
            return False
        state = ckpt.load_state(self.state_path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.run.truncate_metrics(self.step)
        log.info("resumed %s at step %d", self.run.path, self.step)
        return True

    def validate(self) -> dict | None:
        if self.val_set is None or len(self.val_set) == 0:
            return None
        metrics = evaluate(self.model, self.val_set, self.spec, self.precision, desc="val")
        self.run.log_metrics(self.step, val_miou=metrics["miou"], val_pixel_accuracy=metrics["pixel_accuracy"])
        return metrics

    def fit(self, on_step: Callable[[SegTrainer], None] | None = None) -> TrainResult:
        t, start, val = self.cfg.train, time.monotonic(), None
        self.model.train()
        log.info(
            "training %s on %d images, %d steps, %s",
            self.cfg.model.name,
            len(self.train_set),
            t.steps,
            self.precision.describe(),
        )
        running = []
        for step in progress(range(self.step, t.steps), desc="train-seg", total=t.steps - self.step):
            running.append(self.train_step(step))
            self.step = step + 1
            if self.step % t.log_every == 0 or self.step == t.steps:
                loss = sum(running) / len(running)
                running = []
                self.run.log_metrics(self.step, loss=loss, lr=self.scheduler.get_last_lr()[0])
                if not math.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at step {self.step}; lower train.lr")
            if self.step % t.eval_every == 0 and self.step < t.steps:
                self.validate()
            if self.step % t.checkpoint_every == 0 and self.step < t.steps:
                self.save()
            if on_step is not None:
                on_step(self)
        val = self.validate()
        self.save()
        return TrainResult(self.model_dir, val, time.monotonic() - start, self.step)
