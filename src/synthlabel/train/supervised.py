"""One supervised training loop for every downstream model (timm's task pattern): a task turns a model's outputs on a
batch into its loss; the trainer owns batching by (seed, step), optimizer and schedule, logging, checkpoints with
exact resume, validation and scale-out (DDP under torchrun, see synthlabel.distributed)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel import checkpoint as ckpt
from synthlabel import distributed
from synthlabel.device import Precision
from synthlabel.errors import ConfigError
from synthlabel.runs import Run, log, progress
from synthlabel.train.batch import step_generator

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs [B, ...] float, targets [B, ...]): a whole global batch
# A batch source may add a third tensor: [B] bool, True for samples of an extra (synthetic) source, which the loop
# uses for `extra_weight` and `separate_bn`.
Batches = Callable[[int, torch.Generator], Batch | tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
Augment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], Batch]  # a batch hook drawing from the generator


class Task(Protocol):
    """What a model learns: `loss` of its outputs on a batch, the mean over `count(targets)` (samples, or the weight
    of the valid pixels), which lets each rank normalise by the global count (synthlabel.distributed). `weights`
    [B] are per-sample loss weights (None = 1 each)."""

    def loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor: ...

    def count(self, targets: torch.Tensor, weights: torch.Tensor | None = None) -> float: ...


class Classification:
    """Cross-entropy over classes (or conditions): outputs [B, K], targets [B] class ids; the mean is per sample
    (weighted by `weights` when given)."""

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        if weights is None:
            return F.cross_entropy(outputs, targets)
        w = weights.to(outputs.device)
        return (F.cross_entropy(outputs, targets, reduction="none") * w).sum() / w.sum().clamp(min=1e-12)

    def count(self, targets: torch.Tensor, weights: torch.Tensor | None = None) -> float:
        return float(targets.shape[0]) if weights is None else float(weights.sum())


@dataclass
class Segmentation:
    """Per-pixel cross-entropy, class-weighted, skipping `ignore_index`: outputs [B, K, H, W], targets [B, H, W]; the
    mean is over the summed weight of the valid pixels (PyTorch's weighted mean). ignore_index None (no void class):
    only pixels no class can have (-100, e.g. padding of a scaled crop) are skipped."""

    ignore_index: int | None
    weights: torch.Tensor | None = None  # [K]

    def __post_init__(self) -> None:
        self.ignore_index = -100 if self.ignore_index is None else self.ignore_index

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        class_w = self.weights.to(outputs.device) if self.weights is not None else None
        if weights is None:
            return F.cross_entropy(outputs, targets, weight=class_w, ignore_index=self.ignore_index)
        # per-sample weights: the same weighted mean, each pixel's weight times its sample's
        pixel = F.cross_entropy(outputs, targets, weight=class_w, ignore_index=self.ignore_index, reduction="none")
        w = weights.to(outputs.device)[:, None, None]
        return (pixel * w).sum() / self._pixel_weights(targets, w).sum().clamp(min=1e-12)

    def count(self, targets: torch.Tensor, weights: torch.Tensor | None = None) -> float:
        w = None if weights is None else weights.to(targets.device)[:, None, None]
        return float(self._pixel_weights(targets, w).sum())

    def _pixel_weights(self, targets: torch.Tensor, sample_w: torch.Tensor | None) -> torch.Tensor:
        valid = targets != self.ignore_index
        w = valid.float()
        if self.weights is not None:
            w = w * self.weights.to(targets.device)[targets.clamp(0, len(self.weights) - 1)]
        return w if sample_w is None else w * sample_w


@dataclass(frozen=True)
class SupervisedConfig:
    """Steps, batch, optimizer (AdamW) and schedule, and how often to log, validate and checkpoint (0 = never;
    validation and the checkpoint also run at the end)."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    schedule: Literal["constant", "poly", "cosine"] = "constant"
    warmup_steps: int = 0  # poly only: linear warm-up
    poly_power: float = 0.9
    fused: bool = False  # fused AdamW (one kernel per step) where this torch/device has it
    seed: int = 0
    log_every: int = 0
    eval_every: int = 0
    checkpoint_every: int = 0
    channels_last: bool = True
    desc: str | None = None  # progress label (None: no progress output)
    extra_weight: float = 1.0  # loss weight of samples from extra (synthetic) sources
    separate_bn: bool = False  # extra samples get their own batch statistics and never move the running ones


def lr_lambda(cfg: SupervisedConfig) -> Callable[[int], float]:
    """Factor of the base learning rate at a step: constant, poly decay after a linear warm-up, or cosine to 0."""
    total, warmup, power = cfg.steps, cfg.warmup_steps, cfg.poly_power
    if cfg.schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if cfg.schedule == "poly":
        return lambda step: (
            (step + 1) / warmup if step < warmup else max(0.0, 1.0 - (step - warmup) / max(1, total - warmup)) ** power
        )
    return lambda step: 1.0


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Batch norm inside keeps normalising by batch statistics but its running statistics (and counters) come out
    as they went in."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.running_mean, m.running_var, m.num_batches_tracked) for m in norms]
    for m in norms:  # the forward pass updates copies (which autograd may keep); the originals are put back
        m.running_mean, m.running_var = m.running_mean.clone(), m.running_var.clone()
        m.num_batches_tracked = m.num_batches_tracked.clone()
    try:
        yield
    finally:
        for m, (mean, var, n) in zip(norms, saved, strict=True):
            m.running_mean, m.running_var, m.num_batches_tracked = mean, var, n


def make_optimizer(params, cfg: SupervisedConfig) -> torch.optim.Optimizer:
    params = list(params)
    if cfg.fused:
        try:
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, TypeError):  # this torch/device lacks the fused kernel
            pass
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class SupervisedTrainer:
    """One training run of `model` on `task`: the batch of each step, the step, validation, checkpoint and resume are
    separate methods. Under torchrun every rank draws the same global batch and trains on its slice (the loss is
    normalised by the global count, so gradients equal one process's); rank 0 alone writes. Batch norm keeps
    per-rank batch statistics on CPU (torch has no SyncBatchNorm there): for results independent of the number of
    processes use a batch-free norm (the U-Net's norm=group) and no dropout (its masks are drawn per rank).

    batches: (step, generator) -> global batch; augment: hooks applied to it in order with the same generator (a
    hook with its own generator exposes state_dict/load_state_dict and is checkpointed); validate: (model, step) ->
    metrics, run on rank 0; save_model: writes the model (unwrapped) beside the training state."""

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        batches: Batches,
        cfg: SupervisedConfig,
        precision: Precision,
        augment: Sequence[Augment] = (),
        validate: Callable[[nn.Module, int], dict | None] | None = None,
        run: Run | None = None,
        state_path: Path | None = None,
        save_model: Callable[[nn.Module], None] | None = None,
    ):
        distributed.init(precision.device)
        self.device = distributed.local_device(precision.device)
        self.precision = Precision(self.device, precision.bf16)
        self.task, self.batches, self.cfg, self.augment = task, batches, cfg, list(augment)
        self.validate_fn, self.run, self.state_path, self.save_model = validate, run, state_path, save_model
        memory = torch.channels_last if cfg.channels_last else torch.preserve_format
        self.net = distributed.wrap(model.to(self.device, memory_format=memory), self.device)
        self.model = distributed.unwrap(self.net)
        self.optimizer = make_optimizer(self.model.parameters(), cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg))
        self.step, self.last_loss = 0, math.nan
        if cfg.separate_bn and distributed.world_size() > 1:
            raise ConfigError("separate_bn needs one process (two forward passes per step); train without torchrun")

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The global batch of `step`, augmented (inputs, targets, [B] extra-source flags or None): a pure function of
        (seed, step), so a resumed run replays it. Hooks act per sample and keep the order, so the flags hold."""
        g = step_generator(self.cfg.seed, step)
        inputs, targets, *flags = self.batches(step, g)
        for hook in self.augment:
            inputs, targets = hook(inputs, targets, g)
        return inputs, targets, (flags[0] if flags else None)

    def train_step(self, step: int) -> float:
        """One optimizer step on this rank's slice of the batch; returns the slice's mean loss."""
        inputs, targets, extra = self.batch(step)
        weights = None
        if extra is not None and self.cfg.extra_weight != 1.0:
            weights = torch.where(extra, self.cfg.extra_weight, 1.0)
        total = self.task.count(targets, weights)
        part = distributed.local_slice(len(targets))
        inputs, targets = inputs[part], targets[part]
        extra, weights = (None if t is None else t[part] for t in (extra, weights))
        x = inputs.to(self.device)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.precision.autocast():
            outputs = self.forward(x, extra)
        loss = self.task.loss(outputs.float(), targets.to(self.device), weights)
        # this slice's share of the global mean (1 in one process, so the loss is PyTorch's own mean there)
        count = torch.tensor(self.task.count(targets, weights), dtype=torch.float64)
        share = float(distributed.global_mean(count, total))
        self.optimizer.zero_grad(set_to_none=True)
        (loss * share).backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        """The model on a batch. With `separate_bn`, real and extra samples are forwarded apart: each part is
        normalised by its own batch statistics, and the running statistics (what evaluation uses) move with the real
        part only (DSBN-style, Chang et al. CVPR 2019, with shared affine parameters)."""
        if not self.cfg.separate_bn or extra is None or not bool(extra.any()):
            return self.net(x)
        extra = extra.to(x.device)
        real_rows, extra_rows = (~extra).nonzero().flatten(), extra.nonzero().flatten()
        parts = [self.net(x[real_rows])] if len(real_rows) else []
        with frozen_running_stats(self.model):
            parts.append(self.net(x[extra_rows]))
        order = torch.cat([real_rows, extra_rows])
        return torch.cat(parts)[torch.argsort(order)]

    def fit(self, on_step: Callable[[SupervisedTrainer], None] | None = None) -> dict | None:
        """Train from `self.step` to the last step; returns the final validation metrics (None without them)."""
        cfg, running = self.cfg, []
        self.net.train()
        steps = range(self.step, cfg.steps)
        for step in progress(steps, desc=cfg.desc, total=len(steps)) if cfg.desc else steps:
            self.last_loss = self.train_step(step)
            running.append(self.last_loss)
            self.step = step + 1
            if self._due(cfg.log_every) or (cfg.log_every and self.step == cfg.steps):
                self.log_loss(running)
                running = []
            if self._due(cfg.eval_every) and self.step < cfg.steps:
                self.validate()
            if self._due(cfg.checkpoint_every) and self.step < cfg.steps:
                self.save()
            if on_step is not None:
                on_step(self)
        val = self.validate()
        self.save()
        return val

    def _due(self, every: int) -> bool:
        return every > 0 and self.step % every == 0

    def log_loss(self, losses: list[float]) -> None:
        loss = distributed.all_reduce_mean(sum(losses) / len(losses))
        if self.run is not None and distributed.is_main():
            self.run.log_metrics(self.step, loss=loss, lr=self.scheduler.get_last_lr()[0])
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {self.step}; lower the learning rate")

    def validate(self) -> dict | None:
        if self.validate_fn is None or not distributed.is_main():
            return None
        return self.validate_fn(self.model, self.step)

    def state_dict(self) -> dict:
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
        }
        hooks = [h.state_dict() for h in self.augment if hasattr(h, "state_dict")]
        return {**state, "augment": hooks} if hooks else state

    def save(self) -> None:
        """Rank 0 writes the model and the whole training state (weights, optimizer, schedule, RNG, step)."""
        if not distributed.is_main():
            return
        if self.save_model is not None:
            self.save_model(self.model)
        if self.state_path is not None:
            ckpt.save_state(self.state_path, self.state_dict())

    def restore(self) -> bool:
        """Continue from the saved training state (any world size); False when there is none."""
        if self.state_path is None or not self.state_path.is_file():
            return False
        state = ckpt.load_state(self.state_path, required=("step", "model", "optimizer", "scheduler", "rng"))
        with ckpt.restoring(self.state_path):
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            hooks = [h for h in self.augment if hasattr(h, "load_state_dict")]
            for hook, hook_state in zip(hooks, state.get("augment", []), strict=True):
                hook.load_state_dict(hook_state)
        ckpt.set_rng_state(state["rng"])
        self.step = int(state["step"])
        if self.run is not None and distributed.is_main():
            self.run.truncate_metrics(self.step)
        log.info("resumed %s at step %d", self.state_path.parent, self.step)
        return True
