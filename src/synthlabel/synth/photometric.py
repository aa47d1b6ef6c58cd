"""Photometric condition simulation: the cheap baseline a user tries before any translation model. Day images are
re-rendered as dusk, night, fog or snow by image operations alone, so the label maps stay true by construction.

- dusk: gamma darkening, lower exposure, a warm colour temperature, less contrast, sensor noise;
- night: strong darkening and a blue cast, more sensor noise, and glow: warm blobs of light (street lights, head
  lights) in the upper half of the image, plus bloom around what was brightest;
- fog: the atmospheric scattering model I = J t + A (1 - t), t = exp(-beta d), with a depth proxy d that grows
  toward the horizon (image rows: the top is far in road and street scenes), airlight A a light grey;
- snow: a brighter, bluish-white, less saturated scene with falling flakes.

Every random choice comes from the torch Generator passed in, so a sample is a pure function of its seed."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CONDITIONS = ("dusk", "night", "fog", "snow")


def simulate(images: torch.Tensor, condition: str, generator: torch.Generator, strength: float = 1.0) -> torch.Tensor:
    """uint8 images [B, 3, H, W] -> the same scenes under `condition` (uint8, same shape). `strength` scales the
    effect (0 = the input, 1 = the default look)."""
    if condition not in CONDITIONS:
        raise ValueError(f"no photometric simulation for condition {condition!r}; known: {', '.join(CONDITIONS)}")
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"simulate takes uint8 images [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    x = images.float() / 255.0
    out = {"dusk": _dusk, "night": _night, "fog": _fog, "snow": _snow}[condition](x, generator)
    out = x + strength * (out - x)
    return (out.clamp(0, 1) * 255.0).round().to(torch.uint8)


def _u(b: int, generator: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    """[B, 1, 1, 1] uniform in [lo, hi)."""
    return (lo + (hi - lo) * torch.rand(b, generator=generator)).view(b, 1, 1, 1)


def _noise(x: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=generator)


def _tint(x: torch.Tensor, rgb: tuple[float, float, float]) -> torch.Tensor:
    return x * torch.tensor(rgb).view(1, 3, 1, 1)


def _contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * factor + mean


def _dusk(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    y = x.pow(_u(b, g, 1.3, 1.8)) * _u(b, g, 0.45, 0.65)
    y = _contrast(_tint(y, (1.12, 0.95, 0.78)), _u(b, g, 0.8, 0.95))
    return _noise(y, _u(b, g, 0.005, 0.015), g)


def _night(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    bright = x.mean(dim=1, keepdim=True)
    y = _tint(x.pow(_u(b, g, 1.8, 2.4)) * _u(b, g, 0.12, 0.22), (0.85, 0.92, 1.15))
    bloom = F.avg_pool2d((bright > 0.8).float(), 9, 1, 4) * 0.25  # what was brightest glows a little
    lights = torch.zeros(b, 1, h, w)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    for i in range(b):  # 2-5 lights per image, in the upper half
        for _ in range(int(torch.randint(2, 6, (1,), generator=g))):
            cy = float(torch.rand(1, generator=g)) * h * 0.5
            cx = float(torch.rand(1, generator=g)) * w
            r = (0.02 + 0.04 * float(torch.rand(1, generator=g))) * math.hypot(h, w)
            lights[i, 0] += 0.6 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    glow = (bloom + lights).clamp(0, 1) * torch.tensor([1.0, 0.8, 0.5]).view(1, 3, 1, 1)
    return _noise(y + glow, _u(b, g, 0.01, 0.03), g)


def _fog(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, _, h, _ = x.shape
    rows = torch.linspace(1.0, 0.0, h).view(1, 1, h, 1)  # depth proxy: the top of the image is far
    depth = rows.pow(_u(b, g, 0.6, 1.2))
    t = torch.exp(-_u(b, g, 1.2, 2.8) * depth)
    airlight = _u(b, g, 0.75, 0.9)
    return x * t + airlight * (1 - t)


def _snow(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    gray = x.mean(dim=1, keepdim=True)
    y = gray + (x - gray) * _u(b, g, 0.4, 0.7)  # less saturated
    y = _tint(y * 0.8 + 0.25, (0.95, 0.98, 1.05))
    flakes = (torch.rand(b, 1, h, w, generator=g) < _u(b, g, 0.004, 0.012)).float()
    flakes = F.max_pool2d(flakes, 2, 1, 1)[..., :h, :w]  # flakes a couple of pixels wide
    return y * (1 - flakes) + flakes * 0.95
