"""The label map -> image generator stage: `train_generator(cfg, run_dir)` trains a registered generator with the
shared adversarial trainer; this module adds what is particular to label maps: conditions, batches of (image,
label map, condition, z) with paired flips, sample grids and the model directory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthlabel import checkpoint as ckpt
from synthlabel import distributed
from synthlabel.config import GenConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.data.sample import TensorSet, to_float, to_uint8
from synthlabel.data.transforms import apply_geometry, sample_geometry
from synthlabel.downstream.workflow import load_training_data, open_run
from synthlabel.errors import DataError
from synthlabel.generators.build import build_networks, check_networks, generator_kwargs
from synthlabel.generators.io import save_generator
from synthlabel.generators.sampling import render, seeded_noise
from synthlabel.runs import Run, log, seed_everything
from synthlabel.train.augment import DiffAugment
from synthlabel.train.batch import GANBatch, step_generator
from synthlabel.train.gan_trainer import GANOptions, GANTrainer, every, local_precision
from synthlabel.train.losses import LabelImageLoss


@dataclass
class GenTrainResult:
    model_dir: Path
    samples_dir: Path
    seconds: float
    steps: int
    ada_p: float | None


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


class LabelImageTask:
    """The label map -> image parts of a run: batches, sample grids (samples/) and the model (model/: G_ema)."""

    def __init__(
        self, cfg: GenConfig, train: TensorSet, spec: ClassSpec, conditions: Sequence[str], z_dim: int, run_dir: Path
    ):
        self.cfg, self.train_set, self.spec, self.conditions, self.z_dim = cfg, train, spec, list(conditions), z_dim
        self.condition_ids = condition_indices(train.meta, self.conditions)
        if self.conditions and self.condition_ids is None:
            log.warning("no training image has a condition: the generator learns the 'unknown' condition only")
        self.size = tuple(int(s) for s in train.images.shape[-2:])
        self.model_dir, self.samples_dir = Path(run_dir) / "model", Path(run_dir) / "samples"

    def batch(self, step: int) -> GANBatch:
        """The batch of `step`: a pure function of (seed, step), so resuming replays the same data and noise."""
        t = self.cfg.train
        g = step_generator(t.seed, step)
        idx = torch.randint(len(self.train_set), (t.batch_size,), generator=g)
        real, labels = to_float(self.train_set.images[idx]), self.train_set.labels[idx]
        flip = (torch.rand(t.batch_size, generator=g) < 0.5) & t.flip  # drawn always: same stream either way
        real = torch.where(flip[:, None, None, None], real.flip(-1), real)
        labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
        z = torch.randn(t.batch_size, self.z_dim, generator=g)
        if tuple(t.zoom) != (1.0, 1.0):  # drawn last and only when on: runs without it keep their stream
            params = sample_geometry(t.batch_size, False, tuple(t.zoom), g)
            real, labels = apply_geometry(real, labels, params, self.spec.ignore_id)
        condition = None if self.condition_ids is None else self.condition_ids[idx]
        return GANBatch(real, z, label_map=labels, condition=condition, indices=idx)

    def save(self, trainer: GANTrainer, directory: Path | None = None) -> None:
        """model/ (G_ema, rebuildable with load_generator), or `directory`."""
        kwargs = generator_kwargs(self.cfg.model, self.spec.num_classes, len(self.conditions), self.size)
        extra = {"size": list(self.size), "steps": trainer.step, "discriminator": self.cfg.model.discriminator.name}
        G_ema = trainer.G_ema.module
        target = directory or self.model_dir
        save_generator(target, self.cfg.model.name, kwargs, G_ema, self.spec, self.conditions, extra)

    def snapshot(self, trainer: GANTrainer) -> Path:
        """samples/step_XXXXXX.png: a row per training example, columns label | real | G_ema with different z.

        The examples and the z of each column are fixed for the run, so successive grids show progress."""
        t, n = self.cfg.train, len(self.train_set)
        idx = torch.linspace(0, n - 1, min(t.sample_rows, n)).round().long().unique()
        rows, cols = len(idx), t.sample_columns
        labels = self.train_set.labels[idx]
        condition = None if self.condition_ids is None else self.condition_ids[idx].repeat(cols)
        z = seeded_noise(self.z_dim, [t.seed * 7919 + i for i in range(rows * cols)])
        G = trainer.G_ema.module
        fake = to_uint8(render(G, z, labels.repeat(cols, 1, 1), condition, ignore_index=self.spec.ignore_id).images)
        fake = fake.permute(0, 2, 3, 1).reshape(cols, rows, *fake.shape[2:], -1).numpy()  # [cols, rows, H, W, 3]
        real = self.train_set.images[idx].permute(0, 2, 3, 1).numpy()  # [rows, H, W, 3] uint8
        tiles = [[self.spec.colorize(labels[r].numpy()), real[r], *fake[:, r]] for r in range(rows)]
        if t.keep_models:  # the model of this step too, loadable like model/
            self.save(trainer, self.model_dir.parent / "models" / f"step_{trainer.step:06d}")
        return write_grid(self.samples_dir / f"step_{trainer.step:06d}.png", tiles)


def write_grid(path: Path, tiles: list[list[np.ndarray]], gap: int = 2) -> Path:
    """Tiles [H, W, 3] uint8 (rows of equal-sized tiles) as one PNG with white gaps, written atomically."""
    h, w = tiles[0][0].shape[:2]
    grid = np.full((len(tiles) * (h + gap) - gap, len(tiles[0]) * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    with ckpt.atomic_file(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path


def label_trainer(
    cfg: GenConfig, train: TensorSet, spec: ClassSpec, conditions: Sequence[str], run_dir: Path, run: Run | None
) -> GANTrainer:
    """The trainer of a label map -> image run: networks (seeded by train.seed), loss, task, schedules."""
    t = cfg.train
    seed_everything(t.seed)  # the initial weights are part of the run's seed
    G, D = build_networks(cfg.model, spec.num_classes, len(conditions), train.images.shape[-2:])
    a = t.augment
    augment = DiffAugment(a.policy, a.p, a.adaptive, a.target, a.ada_images, ignore_index=spec.ignore_id)
    loss = LabelImageLoss(
        G, D, spec.num_classes, spec.ignore_id, augment if a.policy else None, adversarial=t.adversarial,
        feature_matching=t.feature_matching, r1_gamma=t.r1_gamma, r1_interval=t.r1_interval, label_mix=t.label_mix,
    )  # fmt: skip
    task = LabelImageTask(cfg, train, spec, conditions, G.z_dim, run_dir)
    options = GANOptions(
        t.steps, t.batch_size, t.lr_g, t.lr_d, t.betas, t.ema_decay, t.precision, t.device, log_every=t.log_every,
        snapshot_steps=every(t.sample_every, t.steps), checkpoint_steps=every(t.checkpoint_every, t.steps),
    )  # fmt: skip
    return GANTrainer(loss, task, options, Path(run_dir) / "train_state.pt", run)


def train_generator(
    cfg: GenConfig, run_dir: str | Path, resume: bool = False, on_step: Callable[[GANTrainer], None] | None = None
) -> GenTrainResult:
    """Train a generator into run_dir (model/ with the EMA generator, samples/, metrics, train_state.pt).

    The training images are the segmenter's (`load_training_data`: same split, working size and low-shot subset).
    Data and config errors are raised before the run dir gets anything. Resumable with resume=True; `on_step` is
    called with the trainer after every step. Under torchrun, rank 0 alone writes the run dir."""
    run_dir = Path(run_dir)
    data = cfg.data.model_copy(update={"val_split": None})  # a generator has no validation split
    train, _, spec = load_training_data(data)
    conditions = resolve_conditions(cfg.conditions, spec, train.meta)
    condition_indices(train.meta, conditions)
    check_networks(cfg.model, spec.num_classes, len(conditions), train.images.shape[-2:])
    precision = local_precision(cfg.train.precision, cfg.train.device)  # joins the process group under torchrun
    run = open_run(cfg, cfg.data, run_dir, resume) if distributed.is_main() else None
    trainer = label_trainer(cfg, train, spec, conditions, run_dir, run)
    if run is not None:
        run.write_env(precision.describe())
    if resume:
        trainer.restore()
    m, size = cfg.model, tuple(train.images.shape[-2:])
    log.info("training %s + %s on %d images at %s, %d steps, conditions %s, %s", m.name, m.discriminator.name,
             len(train), size, cfg.train.steps, conditions or "none", precision.describe())  # fmt: skip
    trainer.fit(on_step, desc="train-gen")
    task = trainer.task
    log.info("generator written to %s (%d steps, %.0fs)", task.model_dir, trainer.step, trainer.seconds)
    return GenTrainResult(task.model_dir, task.samples_dir, trainer.seconds, trainer.step, trainer.ada_p)
