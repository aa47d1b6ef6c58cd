"""Class -> image GAN families (dcgan, cgan) trained with the shared adversarial trainer and `ClassImageLoss` on a
run's few labeled images, with evenly spaced EMA snapshots that each render a pool of images per class: the
candidates that generator selection scores. A finished family (result.json written last) is reused."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from synthlabel import checkpoint as ckpt
from synthlabel import distributed
from synthlabel.cls.config import ClassGANConfig
from synthlabel.cls.data import ClassSet
from synthlabel.config import to_dict
from synthlabel.data.sample import to_float, to_uint8
from synthlabel.generators.io import save_generator
from synthlabel.generators.sampling import render, standing_stats
from synthlabel.registry import DISCRIMINATORS, GENERATORS
from synthlabel.runs import Run, log, seed_everything
from synthlabel.train.augment import DiffAugment
from synthlabel.train.batch import GANBatch, step_generator
from synthlabel.train.gan_trainer import GANOptions, GANTrainer, local_precision
from synthlabel.train.losses import ClassImageLoss

LOG_EVERY = 50
STANDING_BATCHES, STANDING_PER_CLASS = 8, 16


def save_pool(path: Path, pool: ClassSet) -> None:
    """A pool of generated images as safetensors (uint8 images, int64 labels; class names in the metadata)."""
    tensors = {"images": pool.images.contiguous(), "labels": pool.labels.contiguous()}
    with ckpt.atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={"class_names": json.dumps(pool.class_names)})


def load_pool(path: str | Path) -> ClassSet:
    with safe_open(str(path), "pt") as f:
        return ClassSet(f.get_tensor("images"), f.get_tensor("labels"), json.loads(f.metadata()["class_names"]))


def snapshot_steps(cfg: ClassGANConfig) -> list[int]:
    """`cfg.snapshots` evenly spaced steps, the last at cfg.steps."""
    n, steps = cfg.snapshots, cfg.steps
    return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)})


@dataclass
class GANRun:
    """A trained family: model/ (final EMA generator), the candidate pools by step, training seconds."""

    family: str
    directory: Path
    pools: dict[int, Path]
    seconds: float

    @property
    def final_step(self) -> int:
        return max(self.pools)


class ClassImageTask:
    """The class -> image parts of a family run: class-balanced batches, snapshot pools (pools/, `pool_per_class`
    images per class), model/ and result.json at the end. `family` names the generator and its discriminator
    (conditioned on "class"); every class of `train` needs an image; `seed` draws weights, batches and noise."""

    def __init__(
        self, family: str, cfg: ClassGANConfig, train: ClassSet, directory: Path, seed: int, pool_per_class: int
    ):
        self.family, self.cfg, self.train_set, self.seed = family, cfg, train, seed
        self.directory, self.pool_per_class = Path(directory), pool_per_class
        size = [int(s) for s in train.image_size]  # the generator's kwargs, JSON-ready: stored with the model
        self.kwargs = {"num_classes": train.num_classes, "channels": train.channels, "image_size": size,
                       "width": cfg.width, "z_dim": cfg.z_dim}  # fmt: skip
        self.members = [(train.labels == k).nonzero()[:, 0] for k in range(train.num_classes)]
        self.sampler: nn.Module | None = None

    def batch(self, step: int) -> GANBatch:
        """b images of every class (K*b rows, class by class) and their z: a pure function of (seed, step)."""
        b, k = self.cfg.batch_per_class, self.train_set.num_classes
        g = step_generator(self.seed, step)
        idx = torch.cat([m[torch.randint(len(m), (b,), generator=g)] for m in self.members])
        z = torch.randn(k * b, self.cfg.z_dim, generator=g)
        return GANBatch(to_float(self.train_set.images[idx]), z, labels=self.train_set.labels[idx], indices=idx)

    def _balanced(self, per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, labels) with per_class samples of every class, classes interleaved (0, 1, .., K-1, 0, 1, ..)."""
        labels = torch.arange(self.train_set.num_classes).repeat(per_class)
        return torch.randn(len(labels), self.cfg.z_dim, generator=generator), labels

    @torch.no_grad()
    def make_sampler(self, G_ema: nn.Module) -> nn.Module:
        """A copy of G_ema with standing batch-norm statistics, in eval mode, fp32, on the CPU."""
        G = copy.deepcopy(G_ema).float().cpu()
        g = torch.Generator().manual_seed(self.seed * 7919 + 1)
        batches = [self._balanced(STANDING_PER_CLASS, g) for _ in range(STANDING_BATCHES)]
        standing_stats(G, lambda i: G(*batches[i]), len(batches))
        return G

    def render_pool(self, G: nn.Module, step: int) -> ClassSet:
        """pool_per_class images of every class from G, deterministic per (seed, step); sorted by class."""
        g = torch.Generator().manual_seed(self.seed * 7919 + 1000 + step)
        z, labels = self._balanced(self.pool_per_class, g)
        images = render(G, z, labels=labels, batch_size=self.train_set.num_classes * 32).images
        order = torch.argsort(labels, stable=True)
        return ClassSet(to_uint8(images[order]), labels[order], list(self.train_set.class_names))

    def pool_path(self, step: int) -> Path:
        return self.directory / "pools" / f"step_{step:06d}.safetensors"

    def snapshot(self, trainer: GANTrainer) -> None:
        """Render and save the pool of the current step (its sampler becomes the model if it is the last)."""
        self.sampler = self.make_sampler(trainer.G_ema.module)
        save_pool(self.pool_path(trainer.step), self.render_pool(self.sampler, trainer.step))

    def save(self, trainer: GANTrainer) -> None:
        """Nothing with a checkpoint: model/ is written once, by `finish`."""

    def finish(self, trainer: GANTrainer) -> GANRun:
        """model/ (the last snapshot's sampler), result.json; train_state.pt is removed (rank 0 writes)."""
        pools = {s: self.pool_path(s) for s in snapshot_steps(self.cfg)}
        run = GANRun(self.family, self.directory, pools, round(trainer.seconds, 2))
        if not distributed.is_main():
            return run
        if self.sampler is None:
            self.snapshot(trainer)
        extra = {"class_names": self.train_set.class_names, "steps": trainer.step, "seed": self.seed}
        save_generator(self.directory / "model", self.family, self.kwargs, self.sampler, extra=extra)
        result = {"family": self.family, "seconds": run.seconds, "pools": {s: p.name for s, p in pools.items()}}
        ckpt.atomic_write_text(self.directory / "result.json", json.dumps(result, indent=1))
        trainer.state_path.unlink(missing_ok=True)
        return run


def class_trainer(
    family: str, cfg: ClassGANConfig, train: ClassSet, directory: str | Path, seed: int, pool_per_class: int
) -> GANTrainer:
    """The trainer of one family on one run's images: networks (seeded by `seed`), loss, task, schedules."""
    directory = Path(directory)
    local_precision(cfg.precision, cfg.device)  # joins the process group under torchrun, before rank 0 writes
    record = {"family": family, "seed": seed, "pool_per_class": pool_per_class, "gan": to_dict(cfg)}
    run = Run(directory, record, resume=True, log_file=False) if distributed.is_main() else None
    task = ClassImageTask(family, cfg, train, directory, seed, pool_per_class)
    seed_everything(seed)
    G = GENERATORS.create(family, **task.kwargs)
    D = DISCRIMINATORS.create(family, **{k: v for k, v in task.kwargs.items() if k != "z_dim"})
    aug = DiffAugment(cfg.augment, cfg.augment_p, cfg.adaptive, cfg.ada_target, cfg.ada_images) if cfg.augment else None
    snaps = snapshot_steps(cfg)
    options = GANOptions(
        cfg.steps, cfg.batch_per_class * train.num_classes, cfg.lr_g, cfg.lr_d, cfg.betas, cfg.ema_decay,
        cfg.precision, cfg.device, log_every=LOG_EVERY,
        snapshot_steps=frozenset(snaps), checkpoint_steps=frozenset(s for s in snaps if s < cfg.steps),
    )  # fmt: skip
    loss = ClassImageLoss(G, D, aug, cfg.adversarial)
    return GANTrainer(loss, task, options, directory / "train_state.pt", run)


def load_run(directory: str | Path) -> GANRun | None:
    """A finished family run (result.json written last), or None."""
    directory = Path(directory)
    path = directory / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    pools = {int(s): directory / "pools" / name for s, name in result["pools"].items()}
    return GANRun(result["family"], directory, pools, float(result["seconds"]))


def train_family(
    family: str, cfg: ClassGANConfig, train: ClassSet, directory: str | Path, seed: int, pool_per_class: int
) -> GANRun:
    """Train (or resume, or load when finished) one family on one run's images."""
    done = load_run(directory)
    if done is not None:
        return done
    trainer = class_trainer(family, cfg, train, directory, seed, pool_per_class)
    trainer.restore()
    trainer.fit(desc=f"{family} {Path(directory).name}")
    run = trainer.task.finish(trainer)
    log.info("%s trained in %.0fs (%d steps) -> %s", family, run.seconds, trainer.step, directory)
    return run
