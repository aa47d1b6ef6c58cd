"""The latent-GAN stage (issue 14): `train_latent_gan(cfg, run_dir)` trains the unconditional `stylegan` generator
and discriminator with the shared adversarial trainer and `LatentImageLoss` on *unlabeled* images (a dataset's
train split read as images only, or a folder); this module adds the image pool, batches, sample grids and the
model directory (G_ema)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synthlabel import distributed
from synthlabel.config import LatentGANConfig, SubsetConfig
from synthlabel.data.datasets import read_rgb
from synthlabel.data.layouts import list_images
from synthlabel.data.sample import to_float, to_uint8
from synthlabel.downstream.workflow import open_run, open_split
from synthlabel.errors import DataError
from synthlabel.generators.io import save_generator
from synthlabel.generators.sampling import render, seeded_noise
from synthlabel.generators.workflow import write_grid
from synthlabel.registry import DISCRIMINATORS, GENERATORS
from synthlabel.runs import Run, log, progress, seed_everything
from synthlabel.train.augment import DiffAugment
from synthlabel.train.batch import GANBatch, step_generator
from synthlabel.train.gan_trainer import GANOptions, GANTrainer, every, local_precision
from synthlabel.train.losses import LatentImageLoss

GRID = 16  # images in a sample grid


@dataclass
class LatentGANResult:
    model_dir: Path
    samples_dir: Path
    seconds: float
    steps: int


def unlabeled_images(cfg: LatentGANConfig) -> torch.Tensor:
    """[N, 3, H, W] uint8 at data.size (or the first image's size): the folder `cfg.images`, or the images of
    data's train split (its low-shot subset ignored: the point is to use every image; masks never read)."""
    if cfg.images:
        files = list_images(Path(cfg.images)) if Path(cfg.images).is_dir() else []
        if not files:
            raise DataError(f"{cfg.images}: no images (png, jpg, ...) to train the latent GAN on")
    else:
        data = cfg.data.model_copy(update={"subset": SubsetConfig()})
        files = [r.image for r in open_split(data, data.train_split).records]
    size = tuple(cfg.data.size) if cfg.data.size else read_rgb(files[0]).shape[:2]
    arrays = [read_rgb(f, size) for f in progress(files, desc="load unlabeled", total=len(files))]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class LatentImageTask:
    """Batches of unlabeled images (flipped at random) and z; sample grids (samples/); model/ (G_ema)."""

    def __init__(self, cfg: LatentGANConfig, images: torch.Tensor, kwargs: dict, run_dir: Path):
        self.cfg, self.images, self.kwargs = cfg, images, kwargs
        self.model_dir, self.samples_dir = Path(run_dir) / "model", Path(run_dir) / "samples"

    def batch(self, step: int) -> GANBatch:
        t = self.cfg.train
        g = step_generator(t.seed, step)
        idx = torch.randint(len(self.images), (t.batch_size,), generator=g)
        flip = (torch.rand(t.batch_size, generator=g) < 0.5) & t.flip
        real = to_float(self.images[idx])
        real = torch.where(flip[:, None, None, None], real.flip(-1), real)
        return GANBatch(real, torch.randn(t.batch_size, self.cfg.model.z_dim, generator=g), indices=idx)

    def save(self, trainer: GANTrainer) -> None:
        extra = {"size": list(self.images.shape[-2:]), "steps": trainer.step, "kind": "latent_gan"}
        save_generator(self.model_dir, "stylegan", self.kwargs, trainer.G_ema.module, extra=extra)

    def snapshot(self, trainer: GANTrainer) -> Path:
        """samples/step_XXXXXX.png: G_ema's renders of the same GRID latents every time."""
        z = seeded_noise(self.cfg.model.z_dim, [self.cfg.train.seed * 7919 + i for i in range(GRID)])
        fake = to_uint8(render(trainer.G_ema.module, z).images).permute(0, 2, 3, 1).numpy()
        rows = [list(fake[r * 8 : r * 8 + 8]) for r in range(GRID // 8)]
        return write_grid(self.samples_dir / f"step_{trainer.step:06d}.png", rows)


def train_latent_gan(
    cfg: LatentGANConfig, run_dir: str | Path, resume: bool = False,
    on_step: Callable[[GANTrainer], None] | None = None,
) -> LatentGANResult:  # fmt: skip
    """Train the latent GAN into run_dir (model/, samples/, metrics, train_state.pt); resumable exactly."""
    run_dir = Path(run_dir)
    images = unlabeled_images(cfg)
    size = tuple(int(s) for s in images.shape[-2:])
    m, t = cfg.model, cfg.train
    kwargs = {"z_dim": m.z_dim, "w_dim": m.w_dim, "width": m.width, "max_channels": m.max_channels,
              "mapping_layers": m.mapping_layers, "image_size": list(size)}  # fmt: skip
    precision = local_precision(t.precision, t.device)
    run: Run | None = open_run(cfg, cfg.data, run_dir, resume) if distributed.is_main() else None
    seed_everything(t.seed)
    G = GENERATORS.create("stylegan", **{**kwargs, "image_size": size})
    D = DISCRIMINATORS.create("stylegan", width=m.d_width, max_channels=m.max_channels, image_size=size)
    a = t.augment
    augment = DiffAugment(a.policy, a.p, a.adaptive, a.target, a.ada_images) if a.policy else None
    loss = LatentImageLoss(G, D, augment, t.r1_gamma, t.r1_interval)
    options = GANOptions(
        t.steps, t.batch_size, t.lr_g, t.lr_d, t.betas, t.ema_decay, t.precision, t.device, log_every=t.log_every,
        snapshot_steps=every(t.sample_every, t.steps), checkpoint_steps=every(t.checkpoint_every, t.steps),
    )  # fmt: skip
    trainer = GANTrainer(loss, LatentImageTask(cfg, images, kwargs, run_dir), options, run_dir / "train_state.pt", run)
    if run is not None:
        run.write_env(precision.describe())
    if resume:
        trainer.restore()
    log.info("training the latent GAN on %d unlabeled images at %s, %d steps, %s", len(images), size, t.steps,
             precision.describe())  # fmt: skip
    trainer.fit(on_step, desc="train-latent-gan")
    task = trainer.task
    log.info("latent GAN written to %s (%d steps, %.0fs)", task.model_dir, trainer.step, trainer.seconds)
    return LatentGANResult(task.model_dir, task.samples_dir, trainer.seconds, trainer.step)
