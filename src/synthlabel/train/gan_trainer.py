"""Adversarial training of a label map -> image generator: StyleGAN2-ADA's phases (Dmain, lazy Dreg, Gmain) with
DiffAugment/ADA shared by real, fake and their label maps, and an EMA of G (Karras et al. 2020; Zhao et al. 2020).

Resumable like the segmenter: each batch is a pure function of (seed, step) and the whole training state (G, D,
G_ema, both optimizers, step, RNG, ADA p) is checkpointed together, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import inspect
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthlabel import checkpoint as ckpt
from synthlabel.config import GenConfig, GenModelConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.data.sample import TensorSet, to_float, to_uint8
from synthlabel.device import resolve_precision
from synthlabel.errors import ConfigError, DataError
from synthlabel.generators.io import save_generator
from synthlabel.generators.workflow import render
from synthlabel.registry import DISCRIMINATORS, GENERATORS
from synthlabel.runs import Run, log, progress, seed_everything
from synthlabel.train.augment import DiffAugment
from synthlabel.train.ema import ModelEMA
from synthlabel.train.losses import GANLoss

# Keys a config's `options` may not set: the trainer derives them from the data and the config's own fields.
_DERIVED = ("num_classes", "num_conditions", "width", "image_size", "z_dim", "num_scales")


def resolve_conditions(configured: Sequence[str] | None, spec: ClassSpec, meta: list[dict]) -> list[str]:
    """The generator's condition names in id order: `configured` if given, else the class spec's conditions,
    else the distinct conditions of the training images (sorted), else none."""
    if configured is not None:
        return list(configured)
    if spec.conditions:
        return list(spec.conditions)
    return sorted({m["condition"] for m in meta if m.get("condition")})


def condition_indices(meta: list[dict], conditions: Sequence[str]) -> torch.Tensor | None:
    """Condition ids [N] long of the training images, in `conditions` order.

    None when the generator has no conditions or no image has one (every image is "unknown": zero one-hot).
    Raises DataError naming the file for a condition outside `conditions`, or when only some images have one."""
    if not conditions:
        return None
    names = [m.get("condition") or None for m in meta]
    if all(n is None for n in names):
        return None
    index = {c: i for i, c in enumerate(conditions)}
    for m, name in zip(meta, names, strict=True):
        where = m.get("file", "an image")
        if name is None:
            raise DataError(
                f"{where}: no condition, but other training images have one; add it to the metadata CSV, "
                "or set conditions: [] to train an unconditioned generator"
            )
        if name not in index:
            raise DataError(
                f"{where}: condition {name!r} is not one the generator knows ({', '.join(conditions)}); "
                "add it to `conditions` in the config (or to classes.json) or fix the metadata CSV"
            )
    return torch.tensor([index[n] for n in names], dtype=torch.long)


def generator_kwargs(model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]) -> dict:
    """Constructor kwargs of the generator (JSON-ready: they are stored in the model directory)."""
    _check_options(model.options, "model.options")
    kwargs = {"num_classes": num_classes, "num_conditions": num_conditions, "width": model.width}
    kwargs["image_size"] = [int(s) for s in size]
    if model.z_dim is not None:
        kwargs["z_dim"] = model.z_dim
    return {**kwargs, **model.options}


def discriminator_kwargs(model: GenModelConfig, num_classes: int, num_conditions: int) -> dict:
    d = model.discriminator
    _check_options(d.options, "model.discriminator.options")
    kwargs = {"num_classes": num_classes, "num_conditions": num_conditions, "width": d.width}
    if "num_scales" in inspect.signature(DISCRIMINATORS.get(d.name)).parameters:  # patch discriminators only
        kwargs["num_scales"] = d.num_scales
    return {**kwargs, **d.options}


def _check_options(options: dict, where: str) -> None:
    clash = sorted(set(options) & set(_DERIVED))
    if clash:
        raise ConfigError(f"{where} may not set {', '.join(clash)}; use the config's own fields or data.size")


def build_networks(
    model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]
) -> tuple[nn.Module, nn.Module]:
    """(G, D) from the config; a config the constructors reject raises ConfigError with their reason."""
    d_kwargs = discriminator_kwargs(model, num_classes, num_conditions)
    generator = _build_generator(model, num_classes, num_conditions, size)
    try:
        discriminator = DISCRIMINATORS.create(model.discriminator.name, **d_kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.discriminator: cannot build {model.discriminator.name!r}: {exc}") from exc
    return generator, discriminator


def _build_generator(model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]) -> nn.Module:
    kwargs = generator_kwargs(model, num_classes, num_conditions, size)
    try:
        return GENERATORS.create(model.name, **{**kwargs, "image_size": tuple(kwargs["image_size"])})
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model: cannot build generator {model.name!r} at size {tuple(size)}: {exc} "
            "(set data.size or model.options)"
        ) from exc


def check_networks(model: GenModelConfig, num_classes: int, num_conditions: int, size: Sequence[int]) -> None:
    """Raise the config errors `build_networks` would, before anything is allocated or written: G is built on the
    meta device; D (fully convolutional, any size) only has its arguments checked against its signature."""
    with torch.device("meta"):
        _build_generator(model, num_classes, num_conditions, size)
    d_kwargs = discriminator_kwargs(model, num_classes, num_conditions)
    try:
        inspect.signature(DISCRIMINATORS.get(model.discriminator.name)).bind(**d_kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.discriminator: cannot build {model.discriminator.name!r}: {exc}") from exc


def make_adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    try:  # fused Adam is one kernel per step; fall back where this torch/device lacks it
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas)


@dataclass
class GANBatch:
    """One training batch (CPU tensors)."""

    indices: torch.Tensor  # [B] long, rows of the training set
    real: torch.Tensor  # [B, 3, H, W] float in [-1, 1]
    label_map: torch.Tensor  # [B, H, W] int64
    condition: torch.Tensor | None  # [B] long; None = unconditioned / unknown
    z: torch.Tensor  # [B, z_dim]


@dataclass
class GenTrainResult:
    model_dir: Path
    samples_dir: Path
    seconds: float
    steps: int
    ada_p: float | None


class GANTrainer:
    """One training run of a generator: batch, step, checkpoint and sample grid as separate methods.

    Args:
        cfg: the stage config (model, train; `cfg.conditions` is already resolved into `conditions`).
        train: the training images at the working size.
        spec: the class spec of the label maps.
        conditions: the generator's condition names in id order (see `resolve_conditions`).
        run: the run directory (metrics, model/, samples/, train_state.pt).
    """

    def __init__(self, cfg: GenConfig, train: TensorSet, spec: ClassSpec, conditions: Sequence[str], run: Run):
        self.cfg, self.train_set, self.spec, self.run = cfg, train, spec, run
        self.conditions = list(conditions)
        self.condition_ids = condition_indices(train.meta, self.conditions)
        if self.conditions and self.condition_ids is None:
            log.warning("no training image has a condition: the generator learns the 'unknown' condition only")
        self.size = tuple(int(s) for s in train.images.shape[-2:])
        t = cfg.train
        self.precision = resolve_precision(t.precision, t.device)
        dev = self.precision.device
        seed_everything(t.seed)  # the initial weights are part of the run's seed
        G, D = build_networks(cfg.model, spec.num_classes, len(self.conditions), self.size)
        self.G = G.to(dev, memory_format=torch.channels_last)
        self.D = D.to(dev, memory_format=torch.channels_last)
        self.G_ema = ModelEMA(self.G, t.ema_decay)
        self.opt_g = make_adam(self.G.parameters(), t.lr_g, t.betas)
        self.opt_d = make_adam(self.D.parameters(), t.lr_d, t.betas)
        self.augment = self._make_augment().to(dev) if t.augment.policy else None
        self.loss = GANLoss(
            self.G,
            self.D,
            spec.num_classes,
            spec.ignore_index,
            self.augment,
            adversarial=t.adversarial,
            feature_matching=t.feature_matching,
            r1_gamma=t.r1_gamma,
            r1_interval=t.r1_interval,
        )
        self.step = 0
        self.state_path = run.path / "train_state.pt"
        self.model_dir = run.path / "model"
        self.samples_dir = run.path / "samples"

    def _make_augment(self) -> DiffAugment:
        a = self.cfg.train.augment
        return DiffAugment(a.policy, a.p, a.adaptive, a.target, a.ada_images, ignore_index=self.spec.ignore_index)

    @property
    def ada_p(self) -> float | None:
        return float(self.augment.p) if self.augment is not None else None

    def batch(self, step: int) -> GANBatch:
        """The batch of `step`: a pure function of (seed, step), so resuming replays the same data and noise."""
        t = self.cfg.train
        g = torch.Generator().manual_seed(t.seed * 1_000_003 + step)
        idx = torch.randint(len(self.train_set), (t.batch_size,), generator=g)
        real, labels = to_float(self.train_set.images[idx]), self.train_set.labels[idx]
        flip = (torch.rand(t.batch_size, generator=g) < 0.5) & t.flip  # drawn always: same stream either way
        real = torch.where(flip[:, None, None, None], real.flip(-1), real)
        labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
        z = torch.randn(t.batch_size, self.G.z_dim, generator=g)
        condition = None if self.condition_ids is None else self.condition_ids[idx]
        return GANBatch(idx, real, labels, condition, z)

    def train_step(self, step: int) -> dict[str, float]:
        """Dmain, Dreg (every r1_interval steps when r1_gamma > 0), Gmain, then the EMA and ADA updates."""
        b = self.batch(step)
        dev = self.precision.device
        real = b.real.to(dev).contiguous(memory_format=torch.channels_last)
        labels, z = b.label_map.to(dev), b.z.to(dev)
        condition = b.condition.to(dev) if b.condition is not None else None
        stats = self._d_main(real, labels, condition, z)
        if self.loss.wants_reg(step):
            stats.update(self._d_reg(real, labels, condition))
        stats.update(self._g_main(real, labels, condition, z))
        self.G_ema.update(self.G)
        if self.augment is not None:
            stats["ada_p"] = self.augment.update(stats["D/real_sign"], len(real))
        return stats

    def _d_main(self, real, labels, condition, z) -> dict[str, float]:
        with self.precision.autocast():
            loss, stats = self.loss.d_main(real, labels, condition, z)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return stats

    def _d_reg(self, real, labels, condition) -> dict[str, float]:
        # fp32 even under bf16: R1 is the norm of a gradient, which bf16 rounding would swamp
        loss, stats = self.loss.d_reg(real, labels, condition)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return stats

    def _g_main(self, real, labels, condition, z) -> dict[str, float]:
        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        try:
            with self.precision.autocast():
                loss, stats = self.loss.g_main(real, labels, condition, z)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.D.requires_grad_(True)
        return {"G/loss": loss.item(), **stats}

    def state_dict(self) -> dict:
        """The whole training state: tensors and plain values only (loadable with weights_only=True)."""
        return {
            "step": self.step,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "augment": self.augment.state_dict() if self.augment is not None else {},  # holds ADA's p
            "rng": ckpt.rng_state(),
        }

    def save(self) -> None:
        """model/ (G_ema, rebuildable with load_generator) + train_state.pt."""
        kwargs = generator_kwargs(self.cfg.model, self.spec.num_classes, len(self.conditions), self.size)
        extra = {"size": list(self.size), "steps": self.step, "discriminator": self.cfg.model.discriminator.name}
        G_ema, name = self.G_ema.module, self.cfg.model.name
        save_generator(self.model_dir, name, kwargs, G_ema, self.spec, self.conditions, extra)
        ckpt.save_state(self.state_path, self.state_dict())

    def restore(self) -> bool:
        """Load train_state.pt if there is one; metrics logged after its step are dropped."""
        if not self.state_path.is_file():
            return False
        state = ckpt.load_state(self.state_path)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.augment is not None:
            self.augment.load_state_dict(state["augment"])
        ckpt.set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.run.truncate_metrics(self.step)
        log.info("resumed %s at step %d", self.run.path, self.step)
        return True

    @torch.no_grad()
    def snapshot(self) -> Path:
        """samples/step_XXXXXX.png: a row per training example, columns label | real | G_ema with different z.

        The examples and the z of each column are fixed for the run, so successive grids show progress."""
        t, n = self.cfg.train, len(self.train_set)
        idx = torch.linspace(0, n - 1, min(t.sample_rows, n)).round().long().unique()
        rows, cols = len(idx), t.sample_columns
        labels = self.train_set.labels[idx]
        condition = None if self.condition_ids is None else self.condition_ids[idx].repeat(cols)
        seeds = [t.seed * 7919 + i for i in range(rows * cols)]
        fake = to_uint8(render(self.G_ema.module, labels.repeat(cols, 1, 1), self.spec, condition, seeds))
        real = self.train_set.images[idx].permute(0, 2, 3, 1).numpy()  # [rows, H, W, 3] uint8
        tiles = [[self.spec.colorize(labels[r].numpy()), real[r]] for r in range(rows)]
        for j in range(cols):
            for r in range(rows):
                tiles[r].append(fake[j * rows + r].permute(1, 2, 0).numpy())
        return self._write_grid(tiles)

    def _write_grid(self, tiles: list[list[np.ndarray]], gap: int = 2) -> Path:
        from PIL import Image

        h, w = self.size
        grid = np.full((len(tiles) * (h + gap) - gap, len(tiles[0]) * (w + gap) - gap, 3), 255, np.uint8)
        for r, row in enumerate(tiles):
            for c, tile in enumerate(row):
                grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
        path = self.samples_dir / f"step_{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        Image.fromarray(grid).save(tmp, format="PNG")
        os.replace(tmp, path)
        return path

    def _log(self, window: dict[str, list[float]], seconds: float) -> None:
        steps = len(window["D/loss"])
        means = {k: sum(v) / len(v) for k, v in window.items()}
        if "ada_p" in means:
            means["ada_p"] = window["ada_p"][-1]  # the current p, not its average over the window
        for key in ("G/loss", "D/loss"):
            if not math.isfinite(means[key]):
                raise FloatingPointError(f"{key} became {means[key]} at step {self.step}; lower train.lr_g/lr_d")
        self.run.log_metrics(self.step, **means, sec_per_step=seconds / steps)

    def fit(self, on_step: Callable[[GANTrainer], None] | None = None) -> GenTrainResult:
        t, start = self.cfg.train, time.monotonic()
        self.G.train()
        self.D.train()
        log.info(
            "training %s + %s on %d images at %s, %d steps, conditions %s, %s",
            self.cfg.model.name,
            self.cfg.model.discriminator.name,
            len(self.train_set),
            self.size,
            t.steps,
            self.conditions or "none",
            self.precision.describe(),
        )
        window: dict[str, list[float]] = defaultdict(list)
        seconds = 0.0
        for step in progress(range(self.step, t.steps), desc="train-gen", total=t.steps - self.step):
            tic = time.monotonic()
            for key, value in self.train_step(step).items():
                window[key].append(value)
            seconds += time.monotonic() - tic
            self.step = step + 1
            if self.step % t.log_every == 0 or self.step == t.steps:
                self._log(window, seconds)
                window, seconds = defaultdict(list), 0.0
            if self.step % t.sample_every == 0 and self.step < t.steps:
                self.snapshot()
            if self.step % t.checkpoint_every == 0 and self.step < t.steps:
                self.save()
            if on_step is not None:
                on_step(self)
        self.snapshot()
        self.save()
        return GenTrainResult(self.model_dir, self.samples_dir, time.monotonic() - start, self.step, self.ada_p)
