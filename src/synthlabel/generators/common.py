"""The generator interface (what a network declares it is conditioned on, and how it is called) and helpers shared
by the families: condition planes, input checks, optional spectral norm, 2x level counts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.errors import DataError

# What a generator or discriminator can declare in its `conditioning` -> the keyword its forward takes it by.
# Every registered generator also has `z_dim`, `image_size` (H, W), `channels` and `num_classes`.
INPUTS = {
    "label_map": "label_map_onehot", "condition": "condition", "class": "labels", "noise": "z", "image": "image",
}  # fmt: skip
OPTIONAL = ("condition",)  # None = unknown condition


def forward_kwargs(network: nn.Module, inputs: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor | None]:
    """The forward keywords of `network` for what it declares in `conditioning`, taken from `inputs` (keyed by
    conditioning name; other entries are ignored). Raises ValueError when a declared input is missing."""
    missing = [c for c in network.conditioning if inputs.get(c) is None and c not in OPTIONAL]
    if missing:
        raise ValueError(f"{type(network).__name__} is conditioned on {network.conditioning}; missing {missing}")
    return {INPUTS[c]: inputs.get(c) for c in network.conditioning}


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
            "convert ids with synthlabel.nn.labels.one_hot"
        )
    if size is not None and tuple(label_map_onehot.shape[-2:]) != tuple(size):
        raise ValueError(f"this model was built for {tuple(size)} images, got {tuple(label_map_onehot.shape[-2:])}")


def check_labels(labels: torch.Tensor, num_classes: int, batch: int) -> None:
    """Clear error for class ids that are not [B] in 0..K-1."""
    if labels.shape != (batch,):
        raise ValueError(f"labels must have shape [{batch}], got {list(labels.shape)}")
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {sorted(set(labels.tolist()))[:10]}")


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap a conv/linear in spectral normalization (Miyato et al. 2018) when `enabled`."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def check_divisible(image_size: tuple[int, int], factor: int, what: str) -> tuple[int, int]:
    """Return image_size as a tuple; raise if H or W is not divisible by `factor` (needed by `what`)."""
    h, w = (int(s) for s in image_size)
    if h % factor or w % factor:
        raise ValueError(f"image_size {(h, w)} must be divisible by {factor} for {what}; resize or change the depth")
    return h, w


def pyramid(image_size: Sequence[int]) -> tuple[tuple[int, int], int, tuple[int, int]]:
    """((H, W), levels, base (H, W) / 2**levels) for an image size: as many 2x up/down-sampling levels (at most 5) as
    keep both sides divisible and the base at least 3 px a side (28 -> 2 levels from 7x7, 32 -> 3 from 4x4, 64 -> 4,
    8 -> 1 from 4x4)."""
    size = h, w = int(image_size[0]), int(image_size[1])
    levels = 0
    while levels < 5 and h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= 3:
        h, w, levels = h // 2, w // 2, levels + 1
    if levels == 0:
        raise ValueError(f"image size {tuple(image_size)} is too small or odd for a GAN; resize to e.g. 28x28")
    return size, levels, (h, w)
