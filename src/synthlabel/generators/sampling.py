"""Sampling from any registered generator, the one place that renders: seeded noise per sample, the inputs the
generator declares in `conditioning`, eval mode and fp32, in chunks; and BigGAN's standing batch-norm statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from synthlabel.generators.common import forward_kwargs
from synthlabel.nn.labels import one_hot


def seeded_noise(z_dim: int, seeds: Sequence[int]) -> torch.Tensor:
    """[B, z_dim] noise whose row i is drawn from torch.Generator().manual_seed(seeds[i]) alone, so a sample's
    noise depends on its seed, never on the batch it is rendered in (the global RNG is not touched)."""
    rows = [torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.cat(rows) if rows else torch.empty(0, z_dim)


@dataclass
class Rendered:
    """What a generator made: images, and the label maps that go with them."""

    images: torch.Tensor  # [B, C, H, W] float32 in [-1, 1], CPU
    label_maps: torch.Tensor | None  # [B, H, W] int64: the generator's own maps, else the input maps, else None


@torch.no_grad()
def render(
    generator: nn.Module,
    z: torch.Tensor,  # [B, z_dim], see `seeded_noise`
    label_maps: torch.Tensor | None = None,  # [B, H, W] int64 ids, for "label_map" conditioning
    condition: torch.Tensor | None = None,  # [B] long, -1 = unknown; None = all unknown
    labels: torch.Tensor | None = None,  # [B] long class ids, for "class" conditioning
    ignore_index: int = 255,
    batch_size: int | None = None,
    images: torch.Tensor | None = None,  # [B, 3, H, W] float in [-1, 1], for "image" conditioning (translators)
) -> Rendered:
    """Render B samples with `generator` from what it declares in `conditioning` (other inputs are ignored).

    Sample i depends only on the generator and row i of the inputs, so any split of the rows (chunks of
    `batch_size`, shards across processes) gives the same samples. Runs in eval mode and fp32 (restoring the mode);
    inputs move to the generator's device. A generator may return (image, label map ids) instead of an image."""
    _check_rows(z, label_maps=label_maps, condition=condition, labels=labels, images=images)
    device = next(generator.parameters()).device
    onehot = one_hot(label_maps, generator.num_classes, ignore_index) if label_maps is not None else None
    given = (("noise", z), ("label_map", onehot), ("class", labels), ("image", images))
    inputs = {k: v for k, v in given if v is not None}
    done, images, own_maps = [], [], []
    was_training = generator.training
    generator.eval()
    try:
        for rows, cond in _chunks(condition, len(z), batch_size):
            chunk = {k: v[rows].to(device) for k, v in inputs.items()}
            chunk["condition"] = cond.to(device) if cond is not None else None
            out = generator(**forward_kwargs(generator, chunk))
            image, own = out if isinstance(out, tuple) else (out, None)
            done.append(rows), images.append(image.float().cpu()), own_maps.append(own)
    finally:
        generator.train(was_training)
    order = torch.argsort(torch.cat(done))  # back to the input order from the condition groups
    if own_maps[0] is not None:
        return Rendered(torch.cat(images)[order], torch.cat(own_maps).cpu()[order])
    return Rendered(torch.cat(images)[order], label_maps.cpu() if label_maps is not None else None)


def _check_rows(z: torch.Tensor, **inputs: torch.Tensor | None) -> None:
    sizes = {name: len(value) for name, value in inputs.items() if value is not None}
    if not len(z) or any(n != len(z) for n in sizes.values()):
        raise ValueError(f"render needs one z per sample (and at least one): {len(z)} rows of z, inputs {sizes}")


def _chunks(condition: torch.Tensor | None, batch: int, size: int | None) -> Iterator[tuple[torch.Tensor, ...]]:
    """(rows, condition ids or None) of at most `size` rows: a generator takes either known ids or None."""
    if condition is None:
        groups = [(torch.arange(batch), None)]
    else:
        condition = torch.as_tensor(condition, dtype=torch.long).cpu()
        known = condition >= 0
        groups = [(known.nonzero()[:, 0], condition[known]), ((~known).nonzero()[:, 0], None)]
    for rows, cond in groups:
        step = size or max(len(rows), 1)
        for start in range(0, len(rows), step):
            yield rows[start : start + step], cond[start : start + step] if cond is not None else None


@torch.no_grad()
def standing_stats(net: nn.Module, forward: Callable[[int], object], batches: int) -> None:
    """Re-estimate every batch norm's running mean/var as the plain average over `batches` forward passes in
    train mode (`forward(i)` runs batch i), then leave `net` in eval mode. An EMA generator's copied running
    statistics belong to the live generator's weights; these belong to its own (BigGAN's "standing stats")."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    try:
        for i in range(batches):
            forward(i)
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        net.eval()
