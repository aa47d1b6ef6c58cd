"""Small U-Net segmenter (Ronneberger et al. 2015), the default downstream model."""

from __future__ import annotations

import torch
from torch import nn

from synthlabel.nn.blocks import DoubleConv, Up
from synthlabel.registry import SEGMENTERS


@SEGMENTERS.register("unet")
class UNet(nn.Module):
    """U-Net with `depth` resolution levels and channels width * 2**level. [B, 3, H, W] -> logits [B, K, H, W].

    norm: batch (per-rank batch statistics when trained on several CPU processes), instance or group (independent
    of the batch, so a distributed run equals a single-process one)."""

    def __init__(
        self,
        num_classes: int,
        width: int = 32,
        depth: int = 4,
        dropout: float = 0.1,
        in_channels: int = 3,
        norm: str = "batch",
    ):
        super().__init__()
        chans = [width * 2**i for i in range(depth)]
        self.stem = DoubleConv(in_channels, chans[0], norm)
        self.down = nn.ModuleList(DoubleConv(chans[i], chans[i + 1], norm) for i in range(depth - 1))
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout)
        self.up = nn.ModuleList(Up(chans[i + 1], chans[i], chans[i], norm) for i in reversed(range(depth - 1)))
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(self.pool(skips[-1])))
        x = self.dropout(skips.pop())
        for block in self.up:
            x = block(x, skips.pop())
        return self.head(x)
