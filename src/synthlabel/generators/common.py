"""Helpers shared by every generator family: label-map one-hot, condition planes, optional spectral norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.errors import DataError


def one_hot(label_map: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """Label ids [B, H, W] int64 -> float one-hot [B, K, H, W]; ignore pixels become all-zero columns.

    Raises DataError naming the bad ids when the map holds ids outside 0..K-1 other than `ignore_index`.
    """
    valid = label_map != ignore_index
    bad = valid & ((label_map < 0) | (label_map >= num_classes))
    if bad.any():
        ids = sorted(set(label_map[bad].unique().tolist()))
        raise DataError(
            f"label map holds ids {ids[:10]} outside 0..{num_classes - 1} (ignore index {ignore_index}); "
            "remap them with the class spec or raise num_classes"
        )
    ids = torch.where(valid, label_map, torch.zeros_like(label_map))
    out = F.one_hot(ids, num_classes).permute(0, 3, 1, 2).float()  # [B, K, H, W]
    return out * valid[:, None]


def condition_vector(condition: torch.Tensor | None, num_conditions: int, batch: int, like: torch.Tensor):
    """Condition ids [B] long (or None = unknown) -> one-hot [B, C] in `like`'s device and dtype."""
    if condition is None or num_conditions == 0:
        return like.new_zeros(batch, num_conditions)
    if condition.shape != (batch,):
        raise ValueError(f"condition must have shape [{batch}], got {list(condition.shape)}")
    if condition.min() < 0 or condition.max() >= num_conditions:
        raise DataError(f"condition ids must be in 0..{num_conditions - 1}, got {condition.tolist()}")
    return F.one_hot(condition.long(), num_conditions).to(like)


def condition_planes(condition: torch.Tensor | None, num_conditions: int, like: torch.Tensor) -> torch.Tensor:
    """Condition ids [B] -> constant one-hot planes [B, C, H, W] at the size of `like` [B, *, H, W]."""
    b, _, h, w = like.shape
    return condition_vector(condition, num_conditions, b, like)[:, :, None, None].expand(-1, -1, h, w)


def check_label_input(label_map_onehot: torch.Tensor, num_classes: int, size: tuple[int, int] | None = None) -> None:
    """Clear error for a generator/discriminator input that is not a [B, K, H, W] one-hot of the right size."""
    if label_map_onehot.dim() != 4 or label_map_onehot.shape[1] != num_classes:
        raise ValueError(
            f"expected a one-hot label map [B, {num_classes}, H, W], got {list(label_map_onehot.shape)}; "
            "convert ids with synthlabel.generators.common.one_hot"
        )
    if size is not None and tuple(label_map_onehot.shape[-2:]) != tuple(size):
        raise ValueError(f"this model was built for {tuple(size)} images, got {tuple(label_map_onehot.shape[-2:])}")


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a conv/linear in spectral normalization (Miyato et al. 2018) when `enabled`."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def check_divisible(image_size: tuple[int, int], factor: int, what: str) -> tuple[int, int]:
    """Return image_size as a tuple; raise if H or W is not divisible by `factor` (needed by `what`)."""
    h, w = (int(s) for s in image_size)
    if h % factor or w % factor:
        raise ValueError(f"image_size {(h, w)} must be divisible by {factor} for {what}; resize or change the depth")
    return h, w
