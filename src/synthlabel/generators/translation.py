"""The condition-translator stage: `train_translator(cfg, run_dir)` trains a `resnet_translator` with the shared
adversarial trainer from labeled source images and unlabeled target-condition images (CUT's PatchNCE + CyCADA's
semantic consistency, `train.losses.TranslationLoss`); this module adds what is particular to translation: the
target pools, batches of (source, its labels, target image, target condition), sample grids and the model
directory. `translate_images` is how a saved translator is applied (`synth.translate` calls it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from synthlabel import distributed
from synthlabel.config import TranslatorConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import read_rgb
from synthlabel.data.layouts import list_images
from synthlabel.data.sample import TensorSet, to_float, to_uint8
from synthlabel.downstream.segmenter import load_segmenter
from synthlabel.downstream.workflow import load_training_data, open_run
from synthlabel.errors import ConfigError, DataError
from synthlabel.generators.io import save_generator
from synthlabel.generators.sampling import render, seeded_noise
from synthlabel.generators.translator import PatchProjector
from synthlabel.generators.workflow import write_grid
from synthlabel.registry import DISCRIMINATORS, GENERATORS
from synthlabel.runs import Run, log, progress, seed_everything
from synthlabel.train.augment import DiffAugment
from synthlabel.train.batch import GANBatch, step_generator
from synthlabel.train.gan_trainer import GANOptions, GANTrainer, every, local_precision
from synthlabel.train.losses import TranslationLoss


@dataclass
class TranslatorResult:
    model_dir: Path
    samples_dir: Path
    seconds: float
    steps: int


def read_target_images(target: str | Path, conditions: Sequence[str], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """{condition: [N, 3, H, W] uint8} of the unlabeled target images at `size`: `target/<condition>/` for each
    condition when such folders exist, else every image of `target` for the only condition. Masks are never read."""
    target = Path(target)
    if not target.is_dir():
        raise DataError(f"{target}: target-condition image folder not found")
    folders = {c: target / c for c in conditions if (target / c).is_dir()}
    if not folders:
        if len(conditions) > 1:
            raise DataError(
                f"{target}: for several target conditions ({', '.join(conditions)}) put each one's images in "
                f"{target}/<condition>/"
            )
        folders = {conditions[0]: target}
    missing = [c for c in conditions if c not in folders]
    if missing:
        raise DataError(f"{target}: no folder for condition(s) {', '.join(missing)}; add {target}/<condition>/")
    pools = {}
    for condition, folder in folders.items():
        files = list_images(folder)
        if not files:
            raise DataError(f"{folder}: no images of condition {condition!r} (png, jpg, ...)")
        arrays = [read_rgb(f, size) for f in progress(files, desc=f"load {condition}", total=len(files))]
        pools[condition] = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return pools


def source_images(train: TensorSet, condition: str | None) -> TensorSet:
    """The training images of `condition` (meta.csv), or all when None; a DataError when none has it."""
    if condition is None:
        return train
    keep = [i for i, m in enumerate(train.meta) if m.get("condition") == condition]
    if not keep:
        found = sorted({str(m.get("condition")) for m in train.meta})
        raise DataError(f"no training image has condition {condition!r} (found: {', '.join(found)})")
    idx = torch.tensor(keep)
    return TensorSet(train.images[idx], train.labels[idx], [train.meta[i] for i in keep])


def scene_pairs(
    train: TensorSet, source_condition: str | None, conditions: Sequence[str]
) -> tuple[TensorSet, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Paired data: (the source-condition images, {condition: (row in those images [P], the same scene's image in
    that condition [P, 3, H, W] uint8)}); a scene is a meta.csv (sequence, frame)."""
    if source_condition is None:
        raise ConfigError("paired translation needs source_condition (the condition to translate from)")
    source = source_images(train, source_condition)
    key = {(m.get("sequence"), m.get("frame")): i for i, m in enumerate(source.meta)}
    pairs = {}
    for condition in conditions:
        rows = [(key[k], i) for i, m in enumerate(train.meta)
                if m.get("condition") == condition and (k := (m.get("sequence"), m.get("frame"))) in key]  # fmt: skip
        if not rows:
            raise DataError(
                f"paired: no training image of condition {condition!r} shares a scene (meta.csv sequence + frame) "
                f"with a {source_condition!r} image; write the pairs into meta.csv or train unpaired"
            )
        src, tgt = zip(*rows, strict=True)
        pairs[condition] = (torch.tensor(src), train.images[torch.tensor(tgt)])
    return source, pairs


class TranslationTask:
    """Batches, sample grids (samples/: source | translations into each condition) and the model (model/: G_ema)."""

    def __init__(self, cfg: TranslatorConfig, source: TensorSet, pools: dict, spec: ClassSpec, run_dir: Path):
        """`pools`: {condition: target images [N, 3, H, W] uint8}, or with `cfg.paired` {condition: (source rows
        [P], the paired target images [P, 3, H, W])}."""
        self.cfg, self.source, self.spec = cfg, source, spec
        self.conditions = list(cfg.conditions)
        self.pools = [pools[c] for c in self.conditions]
        self.size = tuple(int(s) for s in source.images.shape[-2:])
        self.model_dir, self.samples_dir = Path(run_dir) / "model", Path(run_dir) / "samples"

    def batch(self, step: int) -> GANBatch:
        """A pure function of (seed, step): source rows, a target condition per row and a target image of it."""
        t = self.cfg.train
        g = step_generator(t.seed, step)
        b = t.batch_size
        idx = torch.randint(len(self.source), (b,), generator=g)
        condition = torch.randint(len(self.conditions), (b,), generator=g)
        pick = torch.rand(b, generator=g)
        flips = (torch.rand(2, b, generator=g) < 0.5) & t.flip
        z = torch.randn(b, self.cfg.model.z_dim, generator=g)
        if self.cfg.paired:  # a pair per row: the source image and its scene in the target condition, one flip
            rows, targets = [], []
            for c, u in zip(condition.tolist(), pick.tolist(), strict=True):
                src, tgt = self.pools[c]
                j = int(u * len(src))
                rows.append(int(src[j]))
                targets.append(tgt[j])
            idx, real, flips[1] = torch.tensor(rows), torch.stack(targets), flips[0]
        else:
            real = torch.stack([
                self.pools[c][int(u * len(self.pools[c]))]
                for c, u in zip(condition.tolist(), pick.tolist(), strict=True)
            ])  # fmt: skip
        source, labels = self.source.images[idx], self.source.labels[idx]
        source = torch.where(flips[0, :, None, None, None], source.flip(-1), source)
        labels = torch.where(flips[0, :, None, None], labels.flip(-1), labels)
        real = torch.where(flips[1, :, None, None, None], real.flip(-1), real)
        return GANBatch(to_float(real), z, label_map=labels, condition=condition, indices=idx, source=to_float(source))

    def kwargs(self) -> dict:
        m = self.cfg.model
        return {"num_conditions": len(self.conditions), "width": m.width, "blocks": m.blocks, "z_dim": m.z_dim,
                "image_size": list(self.size)}  # fmt: skip

    def save(self, trainer: GANTrainer) -> None:
        extra = {"size": list(self.size), "steps": trainer.step, "kind": "translator",
                 "source_condition": self.cfg.source_condition}  # fmt: skip
        save_generator(self.model_dir, self.cfg.model.name, self.kwargs(), trainer.G_ema.module, self.spec,
                       self.conditions, extra)  # fmt: skip

    def snapshot(self, trainer: GANTrainer) -> Path:
        """samples/step_XXXXXX.png: a row per source image: source | its translation into each condition."""
        t, n = self.cfg.train, len(self.source)
        idx = torch.linspace(0, n - 1, min(t.sample_rows, n)).round().long().unique()
        images = to_float(self.source.images[idx])
        columns = []
        for c in range(len(self.conditions)):
            z = seeded_noise(self.cfg.model.z_dim, [t.seed * 7919 + int(i) for i in idx])
            cond = torch.full((len(idx),), c, dtype=torch.long)
            columns.append(to_uint8(render(trainer.G_ema.module, z, condition=cond, images=images).images))
        src = self.source.images[idx].permute(0, 2, 3, 1).numpy()
        tiles = [[src[r], *(col[r].permute(1, 2, 0).numpy() for col in columns)] for r in range(len(idx))]
        return write_grid(self.samples_dir / f"step_{trainer.step:06d}.png", tiles)


def check_translator(cfg: TranslatorConfig, spec: ClassSpec, size: tuple[int, int]) -> torch.nn.Module | None:
    """Config errors before anything is written; returns the frozen segmenter (or None without consistency)."""
    g, d = cfg.model.name, cfg.model.discriminator.name
    if g not in GENERATORS.names() or "image" not in GENERATORS.get(g).conditioning:
        raise ConfigError(f"model.name {g!r} is not an image -> image translator; use resnet_translator")
    if d not in DISCRIMINATORS.names() or {"label_map", "class"} & set(DISCRIMINATORS.get(d).conditioning):
        raise ConfigError(f"model.discriminator.name {d!r} does not judge images alone; use image_patchgan")
    if cfg.train.consistency == 0:
        return None
    if cfg.segmenter is None:
        raise ConfigError(
            "train.consistency > 0 needs `segmenter` (a real-data segmenter model dir, e.g. from train-seg); "
            "or set train.consistency=0"
        )
    model, meta = load_segmenter(cfg.segmenter)
    k = meta["config"]["num_classes"]
    if k != spec.num_classes:
        raise DataError(f"{cfg.segmenter}: the segmenter predicts {k} classes, the data has {spec.num_classes}")
    if meta.get("size") and tuple(meta["size"]) != tuple(size):
        log.warning("segmenter %s was trained at %s, the translator works at %s", cfg.segmenter, meta["size"], size)
    return model


def translation_trainer(
    cfg: TranslatorConfig, source: TensorSet, pools: dict[str, torch.Tensor], spec: ClassSpec,
    segmenter: torch.nn.Module | None, run_dir: Path, run: Run | None,
) -> GANTrainer:  # fmt: skip
    t, m = cfg.train, cfg.model
    task = TranslationTask(cfg, source, pools, spec, run_dir)
    seed_everything(t.seed)  # the initial weights are part of the run's seed
    G = GENERATORS.create(m.name, **{**task.kwargs(), "image_size": task.size})
    d = m.discriminator
    D = DISCRIMINATORS.create(d.name, num_conditions=len(task.conditions), width=d.width, num_scales=d.num_scales,
                              **d.options)  # fmt: skip
    projector = PatchProjector(G.feature_channels)
    a = t.augment
    augment = DiffAugment(a.policy, a.p, a.adaptive, a.target, a.ada_images) if a.policy else None
    precision = local_precision(t.precision, t.device)
    if segmenter is not None:
        segmenter = segmenter.to(precision.device, memory_format=torch.channels_last)
    loss = TranslationLoss(
        G, D, projector, segmenter, spec.ignore_id, augment, t.adversarial, t.nce, t.nce_patches, t.nce_identity,
        t.consistency, l1=t.l1 if cfg.paired else 0.0, consistency_kind=t.consistency_kind,
        consistency_margin=t.consistency_margin,
    )  # fmt: skip
    options = GANOptions(
        t.steps, t.batch_size, t.lr_g, t.lr_d, t.betas, t.ema_decay, t.precision, t.device, log_every=t.log_every,
        snapshot_steps=every(t.sample_every, t.steps), checkpoint_steps=every(t.checkpoint_every, t.steps),
    )  # fmt: skip
    return GANTrainer(loss, task, options, Path(run_dir) / "train_state.pt", run)


def train_translator(
    cfg: TranslatorConfig, run_dir: str | Path, resume: bool = False,
    on_step: Callable[[GANTrainer], None] | None = None,
) -> TranslatorResult:  # fmt: skip
    """Train a condition translator into run_dir (model/ with the EMA translator, samples/, metrics,
    train_state.pt). Source images: the train split of `cfg.data` at its working size (and low-shot subset),
    optionally only those of `source_condition`; target images: `cfg.target` (never their labels). Resumable."""
    run_dir = Path(run_dir)
    data = cfg.data.model_copy(update={"val_split": None})
    train, _, spec = load_training_data(data)
    if cfg.paired:
        source, pools = scene_pairs(train, cfg.source_condition, cfg.conditions)
    else:
        source = source_images(train, cfg.source_condition)
        pools = read_target_images(cfg.target, cfg.conditions, tuple(int(s) for s in source.images.shape[-2:]))
    size = tuple(int(s) for s in source.images.shape[-2:])
    segmenter = check_translator(cfg, spec, size)
    precision = local_precision(cfg.train.precision, cfg.train.device)
    run = open_run(cfg, cfg.data, run_dir, resume) if distributed.is_main() else None
    trainer = translation_trainer(cfg, source, pools, spec, segmenter, run_dir, run)
    if run is not None:
        run.write_env(precision.describe())
    if resume:
        trainer.restore()
    counts = ", ".join(
        f"{c}: {len(p[0] if cfg.paired else p)}{' pairs' if cfg.paired else ''}" for c, p in pools.items()
    )
    log.info("training %s on %d source images -> %s at %s, %d steps, consistency %g, %s", cfg.model.name,
             len(source), counts, size, cfg.train.steps, cfg.train.consistency if segmenter else 0.0,
             precision.describe())  # fmt: skip
    trainer.fit(on_step, desc="train-translator")
    task = trainer.task
    log.info("translator written to %s (%d steps, %.0fs)", task.model_dir, trainer.step, trainer.seconds)
    return TranslatorResult(task.model_dir, task.samples_dir, trainer.seconds, trainer.step)


def translate_images(
    translator: torch.nn.Module, images: torch.Tensor, condition: int, seeds: Sequence[int]
) -> torch.Tensor:
    """Source images [B, 3, H, W] uint8 at any size -> translations [B, 3, H, W] uint8 at the same size.

    The translator works at its training size; the change it makes there (translation - resized source) is
    upsampled and added to the full-size source, so the source's fine detail (and with it the geometry the labels
    describe) is kept at any size: conditions are mostly low-frequency changes of light and colour."""
    size = tuple(translator.image_size)
    full = to_float(images)
    small = F.interpolate(full, size=size, mode="bilinear", align_corners=False, antialias=True)
    z = seeded_noise(translator.z_dim, seeds)
    cond = torch.full((len(images),), condition, dtype=torch.long)
    out = render(translator, z, condition=cond, images=small).images
    if tuple(full.shape[-2:]) == size:
        return to_uint8(out)
    delta = F.interpolate(out - small, size=full.shape[-2:], mode="bilinear", align_corners=False)
    return to_uint8(full + delta)
