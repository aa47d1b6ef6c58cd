"""The adversarial training loop for every kind of GAN (StyleGAN2-ADA's layout, Karras et al. 2020): it schedules a
loss's named phases and keeps G_ema, ADA's p, logs, checkpoints and exact resume; a kind of GAN is a loss
(`train.losses`), networks and a task (its batches and files). Scales out under torchrun (see `GANTrainer`)."""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from synthlabel import checkpoint as ckpt
from synthlabel import distributed
from synthlabel.device import Precision, resolve_precision
from synthlabel.runs import Run, log, progress
from synthlabel.train.batch import GANBatch
from synthlabel.train.ema import ModelEMA
from synthlabel.train.losses import GANLoss


def make_adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    try:  # fused Adam is one kernel per step; fall back where this torch/device lacks it
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas)


@dataclass(frozen=True)
class GANOptions:
    """How a run trains: optimization, precision and when to log, snapshot and checkpoint (after which step)."""

    steps: int
    batch_size: int  # the global batch, split across ranks
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    ema_decay: float
    precision: str = "auto"
    device: str = "auto"
    log_every: int = 25
    snapshot_steps: frozenset[int] = frozenset()
    checkpoint_steps: frozenset[int] = frozenset()


def every(interval: int, steps: int) -> frozenset[int]:
    """The steps interval, 2 * interval, ... and the last one."""
    return frozenset(range(interval, steps, interval)) | {steps}


class GANTask(Protocol):
    """What a kind of GAN adds to the loop (rank 0 alone calls `snapshot` and `save`)."""

    def batch(self, step: int) -> GANBatch: ...  # the global batch of `step`, CPU tensors

    def snapshot(self, trainer: GANTrainer) -> None: ...  # samples of trainer.G_ema at trainer.step

    def save(self, trainer: GANTrainer) -> None: ...  # the model files written with each checkpoint


class GANTrainer:
    """One adversarial run: the networks are `loss.G` and `loss.D` (built by the caller after seeding, so the
    initial weights are part of the run's seed), the augmentation `loss.augment`.

    Resumable: a batch is a pure function of (seed, step) and the whole state (G, D, G_ema, both optimizers, ADA p,
    RNG, step) is saved together in `state_path`, so a resumed run equals an uninterrupted one. Under torchrun every
    rank draws the same global batch, trains on its rows and averages gradients after each phase
    (`distributed.sync_gradients`); rank 0 alone writes files (`run` is None on the others) and every rank restores
    the same state. Batch norm (dcgan, cgan) then normalizes with per-rank statistics on the CPU, and OASIS balances
    classes by each rank's pixel counts: close to, not equal to, one process.
    """

    def __init__(self, loss: GANLoss, task: GANTask, options: GANOptions, state_path: Path, run: Run | None = None):
        self.loss, self.task, self.options, self.run = loss, task, options, run
        self.precision = local_precision(options.precision, options.device)
        dev = self.precision.device
        self.rows = distributed.local_slice(options.batch_size)
        self.G = loss.G.to(dev, memory_format=torch.channels_last)
        self.D = loss.D.to(dev, memory_format=torch.channels_last)
        self.G_ema = ModelEMA(self.G, options.ema_decay)
        self.g_modules = {name: m.to(dev) for name, m in loss.g_modules.items()}  # trained with G, not saved with it
        g_params = [*self.G.parameters(), *(p for m in self.g_modules.values() for p in m.parameters())]
        self.opt_g = make_adam(g_params, options.lr_g, options.betas)
        self.opt_d = make_adam(self.D.parameters(), options.lr_d, options.betas)
        self.augment = loss.augment.to(dev) if loss.augment is not None else None
        self.step, self.seconds = 0, 0.0
        self.state_path = Path(state_path)

    @property
    def ada_p(self) -> float | None:
        return float(self.augment.p) if self.augment is not None else None

    def batch(self, step: int) -> GANBatch:
        """The global batch of `step` (see the task)."""
        return self.task.batch(step)

    def train_step(self, step: int) -> dict[str, float]:
        """The loss's phases on this rank's rows of the batch, then the EMA and ADA updates; stats are rank means."""
        batch = self.batch(step).local(self.rows, self.precision.device)
        stats: dict[str, float] = {}
        for phase in self.loss.phases(step):
            stats.update(self._phase(phase, batch))
        stats = {k: distributed.all_reduce_mean(v) for k, v in stats.items()}
        self.G_ema.update(self.G)
        if self.augment is not None:
            stats["ada_p"] = self.augment.update(stats["D/real_sign"], batch.global_size)
        return stats

    def _phase(self, phase: str, batch: GANBatch) -> dict[str, float]:
        net, opt = (self.G, self.opt_g) if phase.startswith("G") else (self.D, self.opt_d)
        self.D.requires_grad_(net is self.D)  # G's phases need gradients through D, not for D's weights
        try:
            with contextlib.nullcontext() if phase in self.loss.fp32_phases else self.precision.autocast():
                loss, stats = self.loss(phase, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.sync_gradients(net)
            if net is self.G:
                for module in self.g_modules.values():
                    distributed.sync_gradients(module)
            opt.step()
        finally:
            self.D.requires_grad_(True)
        return stats

    def _stateful(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema, "opt_g": self.opt_g, "opt_d": self.opt_d}
        nets |= {f"G_extra/{name}": m for name, m in self.g_modules.items()}
        return nets | ({"augment": self.augment} if self.augment is not None else {})  # augment holds ADA's p

    def state_dict(self) -> dict:
        """The whole training state: tensors and plain values only (loadable with weights_only=True)."""
        state = {k: v.state_dict() for k, v in self._stateful().items()}
        return {"step": self.step, "seconds": self.seconds, "augment": {}, **state, "rng": ckpt.rng_state()}

    def checkpoint(self) -> None:
        """The task's model files, then train_state.pt (rank 0)."""
        if distributed.is_main():
            self.task.save(self)
            ckpt.save_state(self.state_path, self.state_dict())

    def restore(self) -> bool:
        """Load train_state.pt if there is one (every rank); metrics logged after its step are dropped."""
        if not self.state_path.is_file():
            return False
        state = ckpt.load_state(self.state_path, required=("step", "rng", *self._stateful()))
        with ckpt.restoring(self.state_path):
            for key, target in self._stateful().items():
                target.load_state_dict(state[key])
        ckpt.set_rng_state(state["rng"])
        self.step, self.seconds = int(state["step"]), float(state.get("seconds", 0.0))
        if self.run is not None:
            self.run.truncate_metrics(self.step)
        log.info("resumed %s at step %d", self.state_path.parent, self.step)
        return True

    def _log(self, window: dict[str, list[float]], seconds: float) -> None:
        steps = len(window["D/loss"])
        means = {k: sum(v) / len(v) for k, v in window.items()}
        if "ada_p" in means:
            means["ada_p"] = window["ada_p"][-1]  # the current p, not its average over the window
        for key in ("G/loss", "D/loss"):
            if not math.isfinite(means[key]):
                raise FloatingPointError(f"{key} became {means[key]} at step {self.step}; lower the learning rates")
        if self.run is not None:
            self.run.log_metrics(self.step, **means, sec_per_step=seconds / steps, seconds=round(self.seconds, 2))

    def fit(self, on_step: Callable[[GANTrainer], None] | None = None, desc: str = "train-gan") -> None:
        """Train from the current step to options.steps; `on_step(trainer)` runs after every step."""
        o = self.options
        self.G.train()
        self.D.train()
        window: dict[str, list[float]] = defaultdict(list)
        seconds = 0.0
        for step in progress(range(self.step, o.steps), desc=desc, total=o.steps - self.step):
            tic = time.monotonic()
            for key, value in self.train_step(step).items():
                window[key].append(value)
            seconds += time.monotonic() - tic
            self.step = step + 1
            if self.step % o.log_every == 0 or self.step == o.steps:
                self._log(window, seconds)
                window, seconds = defaultdict(list), 0.0
            if self.step in o.snapshot_steps and distributed.is_main():
                self.task.snapshot(self)
            self.seconds += time.monotonic() - tic
            if self.step in o.checkpoint_steps:
                self.checkpoint()
            if on_step is not None:
                on_step(self)


def local_precision(precision: str, device: str) -> Precision:
    """The precision on this rank's device (cuda:LOCAL_RANK under torchrun), after joining the process group."""
    p = resolve_precision(precision, device)
    distributed.init(p.device)
    return Precision(distributed.local_device(p.device), p.bf16)
