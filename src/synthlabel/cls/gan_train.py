"""Training one class -> image GAN family on a run's few labeled images: a D step and a G step per batch with
DiffAugment/ADA on real and fake (Zhao et al. 2020; Karras et al. 2020), an EMA generator, and evenly spaced EMA
snapshots, each rendering a pool of images per class: the candidates that generator selection scores.

Resumable at every snapshot: a batch is a pure function of (seed, step), and the whole state (G, D, G_ema, both
optimizers, augmentation p, RNG, step) is saved together, so a resumed run equals an uninterrupted one."""

from __future__ import annotations

import copy
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from synthlabel import checkpoint as ckpt
from synthlabel.cls import cgan, dcgan  # noqa: F401  (register the families)
from synthlabel.cls.config import ClassGANConfig
from synthlabel.cls.data import ClassSet
from synthlabel.cls.nets import standing_stats
from synthlabel.data.sample import to_float, to_uint8
from synthlabel.device import resolve_precision
from synthlabel.registry import CLASS_DISCRIMINATORS, CLASS_GENERATORS
from synthlabel.runs import log, progress, seed_everything
from synthlabel.train.augment import DiffAugment
from synthlabel.train.ema import ModelEMA
from synthlabel.train.gan_trainer import make_adam
from synthlabel.train.losses import d_loss, g_loss

LOG_EVERY = 50
STANDING_BATCHES, STANDING_PER_CLASS = 8, 16


def generator_kwargs(cfg: ClassGANConfig, data: ClassSet) -> dict:
    """Constructor kwargs (JSON-ready: stored in the model directory)."""
    size = [int(s) for s in data.image_size]
    return {"num_classes": data.num_classes, "channels": data.channels, "image_size": size, "width": cfg.width,
            "z_dim": cfg.z_dim}  # fmt: skip


def save_pool(path: Path, pool: ClassSet) -> None:
    """A pool of generated images as safetensors (uint8 images, int64 labels; class names in the metadata)."""
    tensors = {"images": pool.images.contiguous(), "labels": pool.labels.contiguous()}
    with ckpt.atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata={"class_names": json.dumps(pool.class_names)})


def load_pool(path: str | Path) -> ClassSet:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        names = json.loads(f.metadata()["class_names"])
    tensors = load_file(str(path))
    return ClassSet(tensors["images"], tensors["labels"], names)


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


class ClassGANTrainer:
    """One family trained on one run's images, into `directory` (metrics.jsonl, pools/, model/, result.json).

    Args:
        family: registered name (CLASS_GENERATORS and CLASS_DISCRIMINATORS).
        cfg: the family's training config.
        train: the run's labeled images (every class must have at least one).
        directory: where everything is written.
        seed: initial weights, batches and noise.
        pool_per_class: images per class rendered at each snapshot.
    """

    def __init__(
        self, family: str, cfg: ClassGANConfig, train: ClassSet, directory: Path, seed: int, pool_per_class: int
    ):
        self.family, self.cfg, self.train_set, self.seed = family, cfg, train, seed
        self.directory, self.pool_per_class = Path(directory), pool_per_class
        self.precision = resolve_precision(cfg.precision, cfg.device)
        dev = self.precision.device
        self.kwargs = generator_kwargs(cfg, train)
        seed_everything(seed)
        G = CLASS_GENERATORS.create(family, **self.kwargs)
        d_kwargs = {k: v for k, v in self.kwargs.items() if k != "z_dim"}
        D = CLASS_DISCRIMINATORS.create(family, **d_kwargs)
        self.G = G.to(dev, memory_format=torch.channels_last)
        self.D = D.to(dev, memory_format=torch.channels_last)
        self.G_ema = ModelEMA(self.G, cfg.ema_decay)
        self.opt_g = make_adam(self.G.parameters(), cfg.lr_g, cfg.betas)
        self.opt_d = make_adam(self.D.parameters(), cfg.lr_d, cfg.betas)
        self.augment = None
        if cfg.augment:
            self.augment = DiffAugment(cfg.augment, cfg.augment_p, cfg.adaptive, cfg.ada_target, cfg.ada_images)
            self.augment = self.augment.to(dev)
        self.members = [(train.labels == k).nonzero()[:, 0] for k in range(train.num_classes)]
        self.step, self.seconds = 0, 0.0
        self.state_path = self.directory / "train_state.pt"

    def snapshot_steps(self) -> list[int]:
        n, steps = self.cfg.snapshots, self.cfg.steps
        return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)})

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(real [K*b, C, H, W] in [-1, 1], labels [K*b], z [K*b, z_dim]) of `step`: b images of every class."""
        b, k = self.cfg.batch_per_class, self.train_set.num_classes
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = torch.cat([m[torch.randint(len(m), (b,), generator=g)] for m in self.members])
        z = torch.randn(k * b, self.cfg.z_dim, generator=g)
        return to_float(self.train_set.images[idx]), self.train_set.labels[idx], z

    def _aug(self, images: torch.Tensor) -> torch.Tensor:
        return self.augment(images)[0] if self.augment is not None else images

    def train_step(self, step: int) -> dict[str, float]:
        dev = self.precision.device
        real, labels, z = (t.to(dev) for t in self.batch(step))
        real = real.contiguous(memory_format=torch.channels_last)
        stats = self._d_step(real, labels, z)
        stats.update(self._g_step(labels, z))
        self.G_ema.update(self.G)
        if self.augment is not None:
            stats["ada_p"] = self.augment.update(stats["D/real_sign"], len(real))
        return stats

    def _d_step(self, real: torch.Tensor, labels: torch.Tensor, z: torch.Tensor) -> dict[str, float]:
        with self.precision.autocast():
            with torch.no_grad():
                fake = self.G(z, labels)
            real_logits = self.D(self._aug(real), labels)
            loss = d_loss(real_logits, self.D(self._aug(fake), labels), self.cfg.adversarial)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {"D/loss": loss.item(), "D/real_sign": real_logits.float().sign().mean().item()}

    def _g_step(self, labels: torch.Tensor, z: torch.Tensor) -> dict[str, float]:
        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        try:
            with self.precision.autocast():
                loss = g_loss(self.D(self._aug(self.G(z, labels)), labels), self.cfg.adversarial)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.D.requires_grad_(True)
        return {"G/loss": loss.item()}

    def _balanced(self, per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, labels) with per_class samples of every class, classes interleaved (0, 1, .., K-1, 0, 1, ..)."""
        k = self.train_set.num_classes
        labels = torch.arange(k).repeat(per_class)
        return torch.randn(len(labels), self.cfg.z_dim, generator=generator), labels

    @torch.no_grad()
    def sampler(self) -> nn.Module:
        """A copy of G_ema with standing batch-norm statistics, in eval mode, fp32, on the CPU."""
        G = copy.deepcopy(self.G_ema.module).float().cpu()
        g = torch.Generator().manual_seed(self.seed * 7919 + 1)
        batches = [self._balanced(STANDING_PER_CLASS, g) for _ in range(STANDING_BATCHES)]
        standing_stats(G, lambda i: G(*batches[i]), len(batches))
        return G

    @torch.no_grad()
    def render_pool(self, G: nn.Module, step: int) -> ClassSet:
        """pool_per_class images of every class from G, deterministic per (seed, step); sorted by class."""
        g = torch.Generator().manual_seed(self.seed * 7919 + 1000 + step)
        z, labels = self._balanced(self.pool_per_class, g)
        k = self.train_set.num_classes
        chunk = k * 32
        images = torch.cat([G(zc, yc) for zc, yc in zip(z.split(chunk), labels.split(chunk), strict=True)])
        order = torch.argsort(labels, stable=True)
        return ClassSet(to_uint8(images[order]), labels[order], list(self.train_set.class_names))

    def pool_path(self, step: int) -> Path:
        return self.directory / "pools" / f"step_{step:06d}.safetensors"

    def snapshot(self) -> nn.Module:
        """Render and save the pool of the current step; returns the sampler used."""
        G = self.sampler()
        save_pool(self.pool_path(self.step), self.render_pool(G, self.step))
        return G

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "seconds": self.seconds,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "augment": self.augment.state_dict() if self.augment is not None else {},
            "rng": ckpt.rng_state(),
        }

    def restore(self) -> bool:
        """Continue from train_state.pt if there is one (metrics past its step are dropped)."""
        if not self.state_path.is_file():
            return False
        state = ckpt.load_state(self.state_path)
        for key, target in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            target.load_state_dict(state[key])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.augment is not None:
            self.augment.load_state_dict(state["augment"])
        ckpt.set_rng_state(state["rng"])
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self._truncate_metrics()
        log.info("resumed %s at step %d", self.directory, self.step)
        return True

    def _truncate_metrics(self) -> None:
        path = self.directory / "metrics.jsonl"
        if path.is_file():
            rows = [r for r in path.read_text().splitlines() if r.strip() and json.loads(r)["step"] <= self.step]
            ckpt.atomic_write_text(path, "".join(r + "\n" for r in rows))

    def _log(self, window: dict[str, list[float]]) -> None:
        row = {"step": self.step, **{k: sum(v) / len(v) for k, v in window.items()}}
        if "ada_p" in window:
            row["ada_p"] = window["ada_p"][-1]
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")

    def fit(self) -> GANRun:
        """Train to cfg.steps (from a restored step if any), snapshot, and write model/ and result.json."""
        snaps, G = set(self.snapshot_steps()), None
        self.G.train()
        self.D.train()
        window: dict[str, list[float]] = defaultdict(list)
        desc = f"{self.family} {self.directory.name}"
        for step in progress(range(self.step, self.cfg.steps), desc=desc, total=self.cfg.steps - self.step):
            tic = time.monotonic()
            for key, value in self.train_step(step).items():
                window[key].append(value)
            self.step = step + 1
            if self.step % LOG_EVERY == 0 or self.step == self.cfg.steps:
                window["seconds"] = [round(self.seconds + time.monotonic() - tic, 2)]
                self._log(window)
                window = defaultdict(list)
            if self.step in snaps:
                G = self.snapshot()
            self.seconds += time.monotonic() - tic
            if self.step in snaps and self.step < self.cfg.steps:
                ckpt.save_state(self.state_path, self.state_dict())
        return self._finish(G if G is not None else self.snapshot())

    def _finish(self, G: nn.Module) -> GANRun:
        extra = {"class_names": self.train_set.class_names, "steps": self.step, "seed": self.seed}
        ckpt.save_model(self.directory / "model", self.family, self.kwargs, {"G": G}, extra=extra)
        pools = {s: self.pool_path(s) for s in self.snapshot_steps()}
        result = {
            "family": self.family,
            "seconds": round(self.seconds, 2),
            "pools": {s: p.name for s, p in pools.items()},
        }
        ckpt.atomic_write_text(self.directory / "result.json", json.dumps(result, indent=1))
        self.state_path.unlink(missing_ok=True)
        return GANRun(self.family, self.directory, pools, round(self.seconds, 2))


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
    trainer = ClassGANTrainer(family, cfg, train, Path(directory), seed, pool_per_class)
    trainer.restore()
    run = trainer.fit()
    log.info("%s trained in %.0fs (%d steps) -> %s", family, run.seconds, trainer.step, directory)
    return run


def load_generator(directory: str | Path) -> tuple[nn.Module, dict]:
    """(generator in eval mode, config.json dict) of a family run's model/."""
    meta = ckpt.read_model_config(directory)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
    return ckpt.load_weights(directory, "G", CLASS_GENERATORS.create(meta["name"], **kwargs)).eval(), meta
