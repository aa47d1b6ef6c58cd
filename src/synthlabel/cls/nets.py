"""Helpers shared by the class -> image GAN families: how many 2x levels fit an image size, packing a batch into
per-class channel groups, and standing batch-norm statistics for sampling."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def num_levels(image_size: tuple[int, int] | list[int], smallest: int = 3, most: int = 5) -> int:
    """The number of 2x up/down-sampling levels for an image size: as many as keep both sides divisible and the
    base at least `smallest` px a side (28 -> 2 levels from 7x7, 32 -> 3 from 4x4, 64 -> 4, 8 -> 1 from 4x4)."""
    h, w = (int(s) for s in image_size)
    levels = 0
    while levels < most and h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= smallest:
        h, w, levels = h // 2, w // 2, levels + 1
    if levels == 0:
        raise ValueError(f"image size {tuple(image_size)} is too small or odd for a GAN; resize to e.g. 28x28")
    return levels


def base_size(image_size: tuple[int, int] | list[int], levels: int) -> tuple[int, int]:
    return int(image_size[0]) >> levels, int(image_size[1]) >> levels


def pack_slots(labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, int]:
    """For a per-class grouped network: the row (slot) of every sample within its class, and the number of rows
    (the largest class count). Sample i goes to packed[slot[i], labels[i]]."""
    counts = torch.bincount(labels, minlength=num_classes)
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slots = torch.empty_like(labels)
    slots[order] = torch.arange(len(labels), device=labels.device) - starts[labels[order]]
    return slots, int(counts.max()) if len(labels) else 0


def check_labels(labels: torch.Tensor, num_classes: int, batch: int) -> None:
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape [{batch}], got {list(labels.shape)}")
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {sorted(set(labels.tolist()))[:10]}")


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
