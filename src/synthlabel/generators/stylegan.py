"""A compact StyleGAN2-style generator and residual discriminator (Karras et al. 2020), trained from scratch on
unlabeled images: the latent GAN whose features a label head reads (HandsOff / DatasetGAN, issue 14).

Generator: mapping network (z -> w, 2nd-moment normalized z, equalized learning rate with a 0.01 multiplier),
a learned constant at the base size, per resolution two modulated 3x3 convolutions with weight demodulation
(the first upsamples) and per-pixel noise inputs, and skip connections through modulated 1x1 toRGB layers. Any
image size whose sides halve down to a base of at least 3 px (`pyramid`), non-square too. `forward(...,
features=True)` also returns every block's feature map: the hypercolumns of the label head.

Discriminator: residual blocks down to the base, minibatch standard deviation, a linear head: one logit."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import pyramid
from synthlabel.registry import DISCRIMINATORS, GENERATORS


class EqualLinear(nn.Module):
    """Linear with equalized learning rate: weights N(0, 1/lr_mul^2), scaled by lr_mul/sqrt(fan_in) at run time."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale, self.lr_mul = lr_mul / math.sqrt(in_features), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv2d(nn.Module):
    """Conv with equalized learning rate (the discriminator's)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale, self.padding = 1 / math.sqrt(in_channels * kernel * kernel), kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class ModulatedConv(nn.Module):
    """3x3 (or 1x1) convolution whose input channels are scaled per sample by a style from w, then (demodulate)
    normalized so each output channel has unit expected variance; optional 2x upsampling before it."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, w_dim: int, demodulate=True, up=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.scale = 1 / math.sqrt(in_channels * kernel**2)
        self.demodulate, self.up, self.padding = demodulate, up, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        b, c, h, wd = x.shape
        style = self.affine(w).to(x.dtype)  # [B, C_in]
        weight = self.weight.to(x.dtype)[None] * self.scale * style[:, None, :, None, None]  # [B, O, I, k, k]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.float().square().sum((2, 3, 4), keepdim=True) + 1e-8).to(x.dtype)
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            h, wd = h * 2, wd * 2
        out = F.conv2d(x.reshape(1, b * c, h, wd), weight.reshape(-1, c, *weight.shape[-2:]), padding=self.padding,
                       groups=b)  # fmt: skip
        return out.reshape(b, -1, h, wd)


class SynthesisLayer(nn.Module):
    """Modulated conv -> + noise x learned strength -> + bias -> leaky ReLU (x sqrt 2, the gain StyleGAN keeps)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x, w)
        if noise is None:
            noise = torch.randn(len(x), 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        x = x + noise.to(x.dtype) * self.noise_strength.to(x.dtype)
        return F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], 0.2) * math.sqrt(2)


@GENERATORS.register("stylegan")
class StyleGenerator(nn.Module):
    """z [B, z_dim] -> image [B, 3, H, W] in [-1, 1] (no tanh: the sum of the toRGB skips, clamped).

    Channels: `width` * 2**(levels - i) at level i, capped at `max_channels`. `truncation_psi` < 1 pulls w towards
    its running mean (`w_avg`, tracked in training). `noise_mode` "random" draws per-pixel noise, "const" uses fixed
    buffers (deterministic renders for a latent)."""

    conditioning, channels, num_classes = ("noise",), 3, 0

    def __init__(
        self,
        z_dim: int = 128,
        w_dim: int = 128,
        width: int = 32,
        max_channels: int = 256,
        mapping_layers: int = 4,
        image_size: tuple[int, int] = (96, 128),
    ):
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.image_size, self.levels, self.base = pyramid(image_size)
        mapping = []
        for i in range(mapping_layers):
            mapping.append(EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=0.01))
        self.mapping = nn.ModuleList(mapping)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        chans = [min(max_channels, width * 2 ** (self.levels - i)) for i in range(self.levels + 1)]
        self.const = nn.Parameter(torch.randn(chans[0], *self.base))
        self.layers = nn.ModuleList([SynthesisLayer(chans[0], chans[0], w_dim)])
        self.to_rgb = nn.ModuleList([ModulatedConv(chans[0], 3, 1, w_dim, demodulate=False)])
        for i in range(1, self.levels + 1):
            self.layers.append(SynthesisLayer(chans[i - 1], chans[i], w_dim, up=True))
            self.layers.append(SynthesisLayer(chans[i], chans[i], w_dim))
            self.to_rgb.append(ModulatedConv(chans[i], 3, 1, w_dim, demodulate=False))
        self.rgb_bias = nn.ParameterList(nn.Parameter(torch.zeros(3)) for _ in self.to_rgb)
        for n in range(len(self.layers)):  # fixed noise for noise_mode="const"
            size = self.base if n == 0 else tuple(s * 2 ** ((n + 1) // 2) for s in self.base)
            self.register_buffer(f"noise_const_{n}", torch.randn(1, 1, *size))
        self.feature_channels = tuple(chans)  # per level: what `features=True` returns

    def map(self, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        """z [B, z_dim] -> w [B, w_dim] (z normalized by its 2nd moment; truncation towards w_avg)."""
        x = z.float() * torch.rsqrt(z.float().square().mean(1, keepdim=True) + 1e-8)
        for layer in self.mapping:
            x = F.leaky_relu(layer(x), 0.2) * math.sqrt(2)
        if truncation_psi != 1.0:
            x = self.w_avg + truncation_psi * (x - self.w_avg)
        return x

    def synthesize(self, w: torch.Tensor, noise_mode: str = "random", features: bool = False):
        """w [B, w_dim] -> image, and with `features` the feature map of every level ([B, C_i, H_i, W_i])."""
        x = self.const[None].expand(len(w), -1, -1, -1)
        feats, rgb = [], None
        for i in range(self.levels + 1):
            pair = [self.layers[0]] if i == 0 else [self.layers[2 * i - 1], self.layers[2 * i]]
            start = 0 if i == 0 else 2 * i - 1
            for j, layer in enumerate(pair):
                noise = getattr(self, f"noise_const_{start + j}") if noise_mode == "const" else None
                x = layer(x, w, noise)
            feats.append(x)
            y = self.to_rgb[i](x, w) + self.rgb_bias[i].to(x.dtype)[None, :, None, None]
            rgb = y if rgb is None else F.interpolate(rgb, scale_factor=2.0, mode="bilinear", align_corners=False) + y
        image = rgb.float().clamp(-1, 1)
        return (image, feats) if features else image

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "const") -> torch.Tensor:
        """Renders are a function of z ("const" noise buffers); training draws fresh noise ("random")."""
        return self.synthesize(self.map(z, truncation_psi), noise_mode)


class _DBlock(nn.Module):
    """Two 3x3 convs then 2x average-pool, with a 1x1 pooled skip; the sum scaled by 1/sqrt 2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0, self.conv1 = EqualConv2d(in_channels, in_channels, 3), EqualConv2d(in_channels, out_channels, 3)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.conv0(x), 0.2) * math.sqrt(2)
        y = F.avg_pool2d(F.leaky_relu(self.conv1(y), 0.2) * math.sqrt(2), 2)
        return (y + F.avg_pool2d(self.skip(x), 2)) / math.sqrt(2)


@DISCRIMINATORS.register("stylegan")
class StyleDiscriminator(nn.Module):
    """Image [B, 3, H, W] -> one realness logit [B]: residual blocks to the base size, minibatch std (groups of up
    to 4), conv, linear. Unconditional."""

    conditioning, kind = (), "logit"

    def __init__(self, width: int = 32, max_channels: int = 256, image_size: tuple[int, int] = (96, 128)):
        super().__init__()
        self.image_size, levels, base = pyramid(image_size)
        chans = [min(max_channels, width * 2**i) for i in range(levels + 1)]
        self.from_rgb = EqualConv2d(3, chans[0], 1)
        self.blocks = nn.ModuleList(_DBlock(chans[i], chans[i + 1]) for i in range(levels))
        self.conv = EqualConv2d(chans[-1] + 1, chans[-1], 3)
        self.fc = EqualLinear(chans[-1] * base[0] * base[1], chans[-1])
        self.out = EqualLinear(chans[-1], 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.from_rgb(image), 0.2) * math.sqrt(2)
        for block in self.blocks:
            x = block(x)
        b = len(x)
        g = min(4, b)
        while b % g:
            g -= 1
        std = x.float().reshape(g, -1, *x.shape[1:]).var(0, unbiased=False).add(1e-8).sqrt().mean((1, 2, 3))
        x = torch.cat([x, std.repeat(g)[:, None, None, None].expand(-1, 1, *x.shape[-2:]).to(x.dtype)], dim=1)
        x = F.leaky_relu(self.conv(x), 0.2) * math.sqrt(2)
        x = F.leaky_relu(self.fc(x.flatten(1)), 0.2) * math.sqrt(2)
        return self.out(x).squeeze(1)
