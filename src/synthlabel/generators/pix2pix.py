"""pix2pix U-Net generator (Isola et al. 2017): label map (+ condition, + optional noise planes) -> image; the fast
baseline, paired with the `patchgan` discriminator. Decoder dropout is the noise in training, as in pix2pix; for
diverse samples at eval time use `z_dim` > 0 (z tiled as planes, as in BicycleGAN)."""

from __future__ import annotations

import torch
from torch import nn

from synthlabel.generators.common import check_divisible, check_label_input, condition_planes
from synthlabel.nn.blocks import norm_layer
from synthlabel.registry import GENERATORS


def _down(in_channels: int, out_channels: int, norm: str, first: bool = False) -> nn.Sequential:
    """LeakyReLU -> conv4x4 stride 2 -> norm (the first layer has neither activation nor norm, as in pix2pix)."""
    layers = [] if first else [nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=norm == "none"))
    layers.append(norm_layer(norm, out_channels))
    return nn.Sequential(*layers)


def _up(in_channels: int, out_channels: int, norm: str, dropout: float) -> nn.Sequential:
    """ReLU -> transposed conv4x4 stride 2 -> norm -> dropout."""
    return nn.Sequential(
        nn.ReLU(),
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=norm == "none"),
        norm_layer(norm, out_channels),
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
    )


@GENERATORS.register("pix2pix")
class Pix2PixGenerator(nn.Module):
    """U-Net with `depth` stride-2 levels and skips: [B, K + C + z_dim, H, W] planes (K label map one-hot, C condition
    one-hot, z tiled; C = 0 or z_dim = 0 for none) -> [B, 3, H, W] in [-1, 1]. Level i has width * 2**min(i, 3)
    channels; H and W must be divisible by 2**depth (`image_size` is only checked: the net is fully convolutional).
    `dropout` is on the three innermost decoder levels (pix2pix: 0.5); `norm` "instance" (default: same output in
    train and eval apart from dropout), "batch" or "group"."""

    conditioning, channels = ("label_map", "condition", "noise"), 3

    def __init__(
        self,
        num_classes: int,
        num_conditions: int = 0,
        width: int = 32,
        depth: int = 4,
        z_dim: int = 0,
        dropout: float = 0.5,
        image_size: tuple[int, int] = (96, 128),
        norm: str = "instance",
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"pix2pix needs depth >= 2, got {depth}")
        self.num_classes, self.num_conditions, self.z_dim, self.depth = num_classes, num_conditions, z_dim, depth
        self.image_size = check_divisible(image_size, 2**depth, f"depth={depth}")
        chans = [width * 2 ** min(i, 3) for i in range(depth)]
        in_channels = num_classes + num_conditions + z_dim
        self.down = nn.ModuleList([_down(in_channels, chans[0], "none", first=True)])
        self.down.extend(_down(chans[i - 1], chans[i], norm if i < depth - 1 else "none") for i in range(1, depth))
        self.up = nn.ModuleList()
        for i in reversed(range(1, depth)):
            skip_in = chans[i] if i == depth - 1 else 2 * chans[i]
            self.up.append(_up(skip_in, chans[i - 1], norm, dropout if depth - 1 - i < 3 else 0.0))
        self.to_rgb = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(2 * chans[0], 3, 4, stride=2, padding=1), nn.Tanh())

    def forward(
        self,
        label_map_onehot: torch.Tensor,  # [B, K, H, W]
        z: torch.Tensor | None = None,  # [B, z_dim]; None draws fresh noise
        condition: torch.Tensor | None = None,  # [B] long; None = unknown condition (zero planes)
    ) -> torch.Tensor:  # [B, 3, H, W] in [-1, 1]
        check_label_input(label_map_onehot, self.num_classes)
        check_divisible(label_map_onehot.shape[-2:], 2**self.depth, f"depth={self.depth}")
        planes = [label_map_onehot, condition_planes(condition, self.num_conditions, label_map_onehot)]
        if self.z_dim:
            b, _, h, w = label_map_onehot.shape
            z = torch.randn(b, self.z_dim, device=label_map_onehot.device) if z is None else z
            planes.append(z.to(label_map_onehot)[:, :, None, None].expand(-1, -1, h, w))
        x = torch.cat(planes, dim=1)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return self.to_rgb(x)
