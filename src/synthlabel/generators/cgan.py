"""One class-conditional GAN for all classes, DCGAN-shaped and scaled to the image size: conditional batch norm in
the generator (a class-dependent gain and bias after each normalization, as in BigGAN) and a projection
discriminator (Miyato & Koyama 2018), with batch norm as in DCGAN or, optionally, spectral norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import check_labels, maybe_spectral_norm, pyramid
from synthlabel.registry import DISCRIMINATORS, GENERATORS


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine; gain (about 1) and bias (about 0) per class from embeddings, initialized
    with a little noise so that classes differ from the first step."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.normal_(self.bias.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain, bias = self.gain(labels)[:, :, None, None], self.bias(labels)[:, :, None, None]
        return self.norm(x) * gain.to(x.dtype) + bias.to(x.dtype)


@GENERATORS.register("cgan")
class CondGenerator(nn.Module):
    """z [B, z_dim] and labels [B] -> images [B, C, H, W] in [-1, 1], DCGAN-shaped: project z and the one-hot label
    to the base size, then per level conditional batch norm, ReLU and a 4x4 stride-2 up-convolution (the last to C
    channels, tanh), with width * 2^i channels i levels above the image (7x7 base for 28x28)."""

    conditioning = ("class", "noise")

    def __init__(
        self,
        num_classes: int,
        channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        width: int = 32,
        z_dim: int = 64,
    ):
        super().__init__()
        self.num_classes, self.channels, self.z_dim = num_classes, channels, z_dim
        self.image_size, levels, self.base = pyramid(image_size)
        c = self.base_channels = width * 2 ** (levels - 1)
        self.project = nn.Linear(z_dim + num_classes, c * self.base[0] * self.base[1], bias=False)
        self.norms, self.ups = nn.ModuleList(), nn.ModuleList()
        for i in range(levels):
            last = i == levels - 1
            c_out = channels if last else c // 2
            self.norms.append(ConditionalBatchNorm(c, num_classes))
            self.ups.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=last))
            c = c_out

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_labels(labels, self.num_classes, z.shape[0])
        onehot = F.one_hot(labels, self.num_classes).to(z.dtype)
        x = self.project(torch.cat([z, onehot], 1)).reshape(z.shape[0], self.base_channels, *self.base)
        for norm, up in zip(self.norms, self.ups, strict=True):
            x = up(F.relu(norm(x, labels)))
        return torch.tanh(x)


@DISCRIMINATORS.register("cgan")
class ProjectionDiscriminator(nn.Module):
    """images [B, C, H, W] and labels [B] -> logits [B], DCGAN-shaped: per level a 4x4 stride-2 convolution
    (batch norm except the first, LeakyReLU 0.2; width * 2^i channels), features h = mean over positions,
    logit = w . h + embed(label) . h (the projection). spectral_norm: spectral-normed layers instead of batch norm
    (Miyato & Koyama's choice; slower to train from few images here)."""

    conditioning, kind = ("class",), "logit"

    def __init__(
        self,
        num_classes: int,
        channels: int = 1,
        image_size: tuple[int, int] = (28, 28),
        width: int = 32,
        spectral_norm: bool = False,
    ):
        super().__init__()
        self.num_classes, self.channels = num_classes, channels
        self.image_size, levels, _ = pyramid(image_size)
        layers: list[nn.Module] = []
        c = channels
        for i in range(levels):
            c_out = width * 2**i
            layers.append(maybe_spectral_norm(nn.Conv2d(c, c_out, 4, 2, 1, bias=i == 0), spectral_norm))
            layers += ([nn.BatchNorm2d(c_out)] if i and not spectral_norm else []) + [nn.LeakyReLU(0.2)]
            c = c_out
        self.body = nn.Sequential(*layers)
        self.linear = maybe_spectral_norm(nn.Linear(c, 1), spectral_norm)
        self.embed = maybe_spectral_norm(nn.Embedding(num_classes, c), spectral_norm)
        nn.init.xavier_uniform_(self.embed.weight if not spectral_norm else self.embed.parametrizations.weight.original)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_labels(labels, self.num_classes, images.shape[0])
        h = self.body(images).mean(dim=(2, 3))  # [B, c]
        return self.linear(h)[:, 0] + (self.embed(labels).to(h.dtype) * h).sum(dim=1)
