"""Stage functions for label map -> image generators: `train_generator(cfg, run_dir)` and `render(...)`, the
seeded rendering shared by training sample grids and synthesis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from synthlabel.config import GenConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.errors import DataError
from synthlabel.generators.common import one_hot
from synthlabel.runs import log

if TYPE_CHECKING:
    from synthlabel.train.gan_trainer import GenTrainResult


def train_generator(cfg: GenConfig, run_dir: str | Path, resume: bool = False, on_step=None) -> GenTrainResult:
    """Train a generator into run_dir (model/ with the EMA generator, samples/, metrics, train_state.pt).

    The training images are the segmenter's (`load_training_data`: same split, working size and low-shot subset).
    Data and config errors are raised before the run dir gets anything. Resumable with resume=True; `on_step` is
    called with the trainer after every step."""
    # the trainer renders its sample grids with `render` below, so it is imported here, not at the top
    from synthlabel.downstream.workflow import load_training_data, open_run
    from synthlabel.train.gan_trainer import GANTrainer, check_networks, condition_indices, resolve_conditions

    run_dir = Path(run_dir)
    data = cfg.data.model_copy(update={"val_split": None})  # a generator has no validation split
    train, _, spec = load_training_data(data)
    conditions = resolve_conditions(cfg.conditions, spec, train.meta)
    condition_indices(train.meta, conditions)
    check_networks(cfg.model, spec.num_classes, len(conditions), train.images.shape[-2:])
    run = open_run(cfg, cfg.data, run_dir, resume)
    trainer = GANTrainer(cfg, train, spec, conditions, run)
    run.write_env(trainer.precision.describe())
    if resume:
        trainer.restore()
    result = trainer.fit(on_step)
    log.info("generator written to %s (%d steps, %.0fs)", result.model_dir, result.steps, result.seconds)
    return result


@torch.no_grad()
def render(
    generator: torch.nn.Module,
    label_maps: torch.Tensor,  # [B, H, W] int64 ids
    spec: ClassSpec,
    condition_ids: torch.Tensor | None,  # [B] long; -1 = unknown; None = all unknown
    seeds: Sequence[int],  # [B]
) -> torch.Tensor:  # [B, 3, H, W] float32 in [-1, 1], on the CPU
    """Images for label maps, deterministic per seed: image i depends only on the generator, label_maps[i],
    condition_ids[i] and seeds[i] (its z is drawn from torch.Generator().manual_seed(seeds[i])).

    Runs the generator in eval mode and fp32 (restoring its mode); the caller chooses the batch size."""
    b = label_maps.shape[0]
    if len(seeds) != b:
        raise ValueError(f"render needs one seed per label map: {len(seeds)} seeds for {b} maps")
    if spec.num_classes != generator.num_classes:
        raise DataError(
            f"the class spec has {spec.num_classes} classes but the generator was trained on "
            f"{generator.num_classes}; use label maps of the generator's class spec"
        )
    device = next(generator.parameters()).device
    z = torch.cat([torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
    onehot = one_hot(label_maps, spec.num_classes, spec.ignore_index)  # [B, K, H, W]
    out = torch.empty(b, 3, *label_maps.shape[-2:])
    was_training = generator.training
    generator.eval()
    try:
        for rows, condition in _condition_groups(condition_ids, b):
            condition = condition.to(device) if condition is not None else None
            images = generator(onehot[rows].to(device), z[rows].to(device), condition)
            out[rows] = images.float().cpu()
    finally:
        generator.train(was_training)
    return out


def _condition_groups(condition_ids: torch.Tensor | None, batch: int):
    """(rows, condition ids or None) groups: a generator takes either all-known ids or None (unknown)."""
    if condition_ids is None:
        yield torch.arange(batch), None
        return
    condition_ids = torch.as_tensor(condition_ids, dtype=torch.long).cpu()
    known = condition_ids >= 0
    if known.any():
        yield known.nonzero()[:, 0], condition_ids[known]
    if not known.all():
        yield (~known).nonzero()[:, 0], None
