"""Spatially-adaptive normalization and the SPADE residual block (Park et al. 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization"), with an optional per-sample code (condition, noise) as in OASIS's 3D noise."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """Normalization without its own affine parameters (SPADE supplies gamma and beta)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"unknown SPADE norm {kind!r}; use 'instance' or 'batch'")


def resize_segmap(segmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a one-hot map [B, K, H, W] to `size`: area when shrinking, so a small or rare class survives at a
    coarse level as fractional membership instead of vanishing as with nearest; nearest when enlarging."""
    if tuple(segmap.shape[-2:]) == tuple(size):
        return segmap
    if segmap.shape[-2] >= size[0] and segmap.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(segmap, size)
    return F.interpolate(segmap, size=size, mode="nearest")


class SPADE(nn.Module):
    """x -> norm(x) * (1 + gamma) + beta, with gamma, beta [B, C, H, W] predicted from the resized label map.

    `code_dim` > 0 adds a per-sample code [B, D] (condition one-hot, noise) to the hidden layer. That equals
    concatenating the code as D constant planes to the label map before the first conv (up to the zero-padded
    border), without convolving constant planes at every resolution. The ReLU after it lets the code change how
    each class is rendered, locally.
    """

    def __init__(
        self, channels: int, label_channels: int, hidden: int = 128, norm: str = "instance", code_dim: int = 0
    ):
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.shared = nn.Conv2d(label_channels, hidden, 3, padding=1)
        self.code = nn.Linear(code_dim, hidden, bias=False) if code_dim > 0 else None
        self.gamma_beta = nn.Conv2d(hidden, 2 * channels, 3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C, H, W], segmap [B, K, h, w] (any size), code [B, D] or None -> [B, C, H, W]."""
        hidden = self.shared(resize_segmap(segmap, x.shape[-2:]))
        if self.code is not None:
            if code is None:
                raise ValueError("this SPADE layer was built with code_dim > 0; pass the code [B, D]")
            hidden = hidden + self.code(code)[:, :, None, None]
        gamma, beta = self.gamma_beta(F.relu(hidden)).chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """SPADE -> LeakyReLU -> conv3x3, twice, plus a shortcut (SPADE -> conv1x1, learned when channels change)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        label_channels: int,
        hidden: int = 128,
        norm: str = "instance",
        code_dim: int = 0,
    ):
        super().__init__()
        mid = min(in_channels, out_channels)
        spade = dict(label_channels=label_channels, hidden=hidden, norm=norm, code_dim=code_dim)
        self.norm_0 = SPADE(in_channels, **spade)
        self.conv_0 = nn.Conv2d(in_channels, mid, 3, padding=1, bias=False)  # a bias would be normalized away
        self.norm_1 = SPADE(mid, **spade)
        self.conv_1 = nn.Conv2d(mid, out_channels, 3, padding=1)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = SPADE(in_channels, **spade)
            self.conv_s = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, C_in, H, W], segmap [B, K, h, w], code [B, D] or None -> [B, C_out, H, W]."""
        shortcut = self.conv_s(self.norm_s(x, segmap, code)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap, code), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap, code), 0.2))
        return shortcut + dx
