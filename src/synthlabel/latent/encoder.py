"""The inversion encoder of the latent GAN (HandsOff's recipe without pretrained nets): image -> w such that the
generator renders the image back. Trained in two phases with the shared supervised loop:
1. latent regression on generated pairs (G(w), w): MSE to w, with w drawn from the mapping network;
2. reconstruction on real images: L1 + (1 - SSIM) between G(E(x)) and x, through the frozen generator.
`refine` optionally optimizes each image's w a few steps further (per-image latent refinement)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim
from torch import nn

from synthlabel.data.sample import to_float


class LatentEncoder(nn.Module):
    """Image [B, 3, H, W] in [-1, 1] -> w [B, w_dim]: stride-2 conv blocks (LeakyReLU, group norm), global average
    and max pooling, a linear head; the output is offset by the generator's mean w (`w_avg`, set before training),
    so an untrained encoder starts at the average image."""

    def __init__(self, w_dim: int, width: int = 32, levels: int = 5, max_channels: int = 256):
        super().__init__()
        self.w_dim = w_dim
        chans = [3] + [min(max_channels, width * 2**i) for i in range(levels)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(min(8, c_out), c_out),
                       nn.LeakyReLU(0.2)]  # fmt: skip
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * chans[-1], w_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(images)
        return self.w_avg + self.head(torch.cat([x.mean((2, 3)), x.amax((2, 3))], dim=1).float())


class LatentRegression:
    """Phase 1's task: MSE between the encoder's w and the w that generated the image (per sample)."""

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weights=None) -> torch.Tensor:
        return F.mse_loss(outputs.float(), targets.to(outputs.device).float())

    def count(self, targets: torch.Tensor, weights=None) -> float:
        return float(targets.shape[0])


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor, ssim_weight: float = 1.0) -> torch.Tensor:
    """L1 + ssim_weight x (1 - SSIM), images in [-1, 1] (SSIM on [0, 1], 7-px window: small images)."""
    l1 = (fake.float() - real.float()).abs().mean()
    if ssim_weight == 0:
        return l1
    s = ssim((fake.float() + 1) / 2, (real.float() + 1) / 2, data_range=1.0, win_size=7, size_average=True)
    return l1 + ssim_weight * (1 - s)


class Reconstruction:
    """Phase 2's task: the frozen generator renders the encoder's w (fixed noise); `reconstruction_loss` to the
    input image."""

    def __init__(self, generator: nn.Module, ssim_weight: float = 1.0):
        self.G, self.ssim_weight = generator.eval().requires_grad_(False), ssim_weight

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weights=None) -> torch.Tensor:
        fake = self.G.synthesize(outputs, noise_mode="const")
        return reconstruction_loss(fake, targets.to(fake.device), self.ssim_weight)

    def count(self, targets: torch.Tensor, weights=None) -> float:
        return float(targets.shape[0])


def generated_pairs(generator: nn.Module, batch_size: int) -> Callable:
    """Phase 1's batches: (G(w) images, w) for w = map(z), z from the step's generator (fixed noise, no grad)."""

    @torch.no_grad()
    def batches(step: int, g: torch.Generator):
        z = torch.randn(batch_size, generator.z_dim, generator=g)
        w = generator.map(z)
        return generator.synthesize(w, noise_mode="const").float(), w

    return batches


def real_images(images: torch.Tensor, batch_size: int, flip: bool = True) -> Callable:
    """Phase 2's batches: real images [N, 3, H, W] uint8 (flipped at random) as both input and target."""

    def batches(step: int, g: torch.Generator):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x = to_float(images[idx])
        if flip:
            x = torch.where((torch.rand(batch_size, generator=g) < 0.5)[:, None, None, None], x.flip(-1), x)
        return x, x

    return batches


def refine(generator: nn.Module, w: torch.Tensor, images: torch.Tensor, steps: int, lr: float = 0.01) -> torch.Tensor:
    """Per-image latent refinement: `steps` of Adam on w to lower `reconstruction_loss` (generator frozen);
    returns the refined w (detached). images [B, 3, H, W] in [-1, 1]."""
    if steps <= 0:
        return w.detach()
    w = w.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    generator.requires_grad_(False)
    for _ in range(steps):
        loss = reconstruction_loss(generator.synthesize(w, noise_mode="const"), images)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return w.detach()


@torch.no_grad()
def invert(encoder: nn.Module, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """w [N, w_dim] of uint8 images [N, 3, H, W], in eval mode."""
    encoder.eval()
    out = [encoder(to_float(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, encoder.w_dim)


def w_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS distance between latents, per dimension."""
    return float((a.detach().float() - b.detach().float()).square().mean().sqrt()) if a.numel() else math.nan
