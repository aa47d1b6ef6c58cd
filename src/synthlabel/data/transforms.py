"""Paired batch transforms: geometry sampled once and applied to image and label map alike (labels resampled
with nearest), photometry on the image only. Kornia's idea, on whole batches so CPU training stays fast."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class GeometryParams:
    """Per-sample affine parameters: [B, 2, 3] matrices mapping output to input coordinates."""

    theta: torch.Tensor


def sample_geometry(batch: int, flip: bool, scale: tuple[float, float], generator: torch.Generator) -> GeometryParams:
    """Random horizontal flip + scale (zoom) + translation keeping the crop inside the image when zooming in."""
    u = torch.rand(batch, 4, generator=generator)
    lo, hi = scale
    # log-uniform scale, so zooming in and out are equally likely around 1.
    s = torch.exp(torch.log(torch.tensor(lo)) + u[:, 0] * (torch.log(torch.tensor(hi)) - torch.log(torch.tensor(lo))))
    sign = torch.where((u[:, 1] < 0.5) & flip, -1.0, 1.0)
    span = (1.0 - 1.0 / s).abs()  # free room for the crop window, in normalized coordinates
    tx, ty = (u[:, 2] * 2 - 1) * span, (u[:, 3] * 2 - 1) * span
    zero = torch.zeros(batch)
    theta = torch.stack([torch.stack([sign / s, zero, tx], 1), torch.stack([zero, 1.0 / s, ty], 1)], 1)  # [B, 2, 3]
    return GeometryParams(theta)


def apply_geometry(
    images: torch.Tensor, labels: torch.Tensor, params: GeometryParams, ignore_index: int, image_mode: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp images [B, C, H, W] (bilinear) and labels [B, H, W] (nearest; outside the image -> ignore_index)."""
    theta = params.theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out_img = F.grid_sample(images, grid, mode=image_mode, padding_mode="reflection", align_corners=False)
    # Shift labels by +1 so zero padding marks "outside the image" distinctly from class 0.
    shifted = labels[:, None].to(grid.dtype) + 1
    lab = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0].round().long()
    return out_img, torch.where(lab == 0, torch.full_like(lab, ignore_index), lab - 1)


def color_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation on images in [-1, 1] (image only; labels are untouched)."""
    if strength <= 0:
        return images
    b = images.shape[0]
    u = (torch.rand(b, 3, generator=generator) * 2 - 1) * strength
    x = (images + 1) / 2
    x = x * (1 + u[:, 0]).view(b, 1, 1, 1).to(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 + u[:, 1]).view(b, 1, 1, 1).to(x) + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * (1 + u[:, 2]).view(b, 1, 1, 1).to(x) + gray
    return x.clamp(0, 1) * 2 - 1


@dataclass
class PairedAugment:
    """Classic segmentation augmentation: flip, random scale-crop (same geometry for the mask), color jitter."""

    flip: bool = True
    scale: tuple[float, float] = (0.75, 1.5)
    jitter: float = 0.25
    ignore_index: int = 255

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        params = sample_geometry(images.shape[0], self.flip, self.scale, generator)
        images, labels = apply_geometry(images, labels, params, self.ignore_index)
        return color_jitter(images, self.jitter, generator), labels
