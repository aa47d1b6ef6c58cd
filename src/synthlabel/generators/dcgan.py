"""One DCGAN per class (Radford et al. 2016), the published per-class setup, scaled to the image size. The K GANs
share nothing: channel group k of every layer is class k's network (grouped convolutions, per-channel batch norm),
so K small GANs run as one pass instead of K, on batches packed by `run_packed`."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import check_labels, pyramid
from synthlabel.registry import DISCRIMINATORS, GENERATORS


def run_packed(forward_packed: Callable, x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pack x [B, ...] into rows of one sample per class ([m, K, ...]: sample i goes to row `slot` = its rank within
    its class, column labels[i]), run `forward_packed`, unpack to [B, ...]. Train with class-balanced batches: zero
    rows that fill an unbalanced batch would enter the batch-norm statistics of the classes they pad."""
    check_labels(labels, num_classes, x.shape[0])
    onehot = F.one_hot(labels, num_classes)  # [B, K]
    slots = (onehot.cumsum(0) * onehot).sum(1) - 1
    packed = x.new_zeros(int(onehot.sum(0).max()), num_classes, *x.shape[1:])
    packed[slots, labels] = x
    return forward_packed(packed)[slots, labels]


@GENERATORS.register("dcgan")
class PerClassGenerator(nn.Module):
    """K independent DCGAN generators: z [B, z_dim] and labels [B] -> images [B, C, H, W] in [-1, 1].

    Each is project -> (up-convolution 4x4 stride 2, batch norm, ReLU) per level -> tanh, with width * 2^i
    channels i levels above the image; the base is the image size divided by 2^levels (7x7 for 28x28)."""

    conditioning = ("class", "noise")

    def __init__(
        self,
        num_classes: int,
        channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        width: int = 16,
        z_dim: int = 64,
    ):
        super().__init__()
        self.num_classes, self.channels, self.z_dim = num_classes, channels, z_dim
        self.image_size, levels, self.base = pyramid(image_size)
        k, c = num_classes, width * 2 ** (levels - 1)
        self.base_channels = c
        # a per-class linear layer as a grouped 1x1 convolution
        self.project = nn.Conv2d(k * z_dim, k * c * self.base[0] * self.base[1], 1, groups=k, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(k * c), nn.ReLU(inplace=True)]
        for i in range(levels):
            last = i == levels - 1
            c_out = channels if last else c // 2
            layers.append(nn.ConvTranspose2d(k * c, k * c_out, 4, 2, 1, groups=k, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(k * c_out), nn.ReLU(inplace=True)]
            c = c_out
        self.body = nn.Sequential(*layers)

    def forward_packed(self, z: torch.Tensor) -> torch.Tensor:
        """z [m, K, z_dim] (row i = one sample of every class) -> [m, K, C, H, W]."""
        m, k = z.shape[:2]
        x = self.project(z.reshape(m, k * self.z_dim, 1, 1))
        x = self.body(x.reshape(m, k * self.base_channels, *self.base))
        return x.reshape(m, k, self.channels, *self.image_size)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return run_packed(self.forward_packed, z, labels, self.num_classes)


@DISCRIMINATORS.register("dcgan")
class PerClassDiscriminator(nn.Module):
    """K independent DCGAN discriminators: images [B, C, H, W] and labels [B] -> logits [B] (class k's sample is
    judged by class k's network). (Convolution 4x4 stride 2, batch norm except first, LeakyReLU 0.2) per level,
    then a per-class linear layer over the base feature map."""

    conditioning, kind = ("class",), "logit"

    def __init__(self, num_classes: int, channels: int = 1, image_size: tuple[int, int] = (28, 28), width: int = 16):
        super().__init__()
        self.num_classes, self.channels = num_classes, channels
        self.image_size, levels, base = pyramid(image_size)
        k, c_in, layers = num_classes, channels, []
        for i in range(levels):
            c_out = width * 2**i
            layers.append(nn.Conv2d(k * c_in, k * c_out, 4, 2, 1, groups=k, bias=i == 0))
            layers += ([nn.BatchNorm2d(k * c_out)] if i else []) + [nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        layers.append(nn.Conv2d(k * c_in, k, base, groups=k))
        self.body = nn.Sequential(*layers)

    def forward_packed(self, images: torch.Tensor) -> torch.Tensor:
        """images [m, K, C, H, W] -> logits [m, K]."""
        m, k = images.shape[:2]
        return self.body(images.reshape(m, k * self.channels, *self.image_size)).reshape(m, k)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return run_packed(self.forward_packed, images, labels, self.num_classes)
