"""Image classifiers trained from scratch, registered in CLASSIFIERS (build one with CLASSIFIERS.create(name, ...))."""

from __future__ import annotations

import torch
from torch import nn

from synthlabel.registry import CLASSIFIERS


def num_pools(image_size: tuple[int, int] | list[int]) -> int:
    """2x poolings that keep the smaller side at least 4 px (28 -> 2: 28, 14, 7; 8 -> 1; 64 -> 4)."""
    side, pools = min(int(s) for s in image_size), 0
    while side // 2 >= 4:
        side, pools = (side + 1) // 2, pools + 1
    return pools


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """A small VGG-style CNN: (3x3 conv, batch norm, ReLU) blocks doubling the width at each 2x max-pool, down to
    4-7 px, then global average pooling, dropout and a linear layer. images [B, C, H, W] -> logits [B, K]."""

    def __init__(
        self,
        num_classes: int,
        channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        width: int = 16,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.num_classes, self.channels = num_classes, channels
        self.image_size = (int(image_size[0]), int(image_size[1]))
        layers, c = conv_bn(channels, width), width
        for _ in range(num_pools(self.image_size)):
            layers += conv_bn(c, c) + [nn.MaxPool2d(2, ceil_mode=True)]
            layers += conv_bn(c, 2 * c)
            c *= 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


CLASSIFIERS.register("cnn")(SmallCNN)
