"""SPADE generator (Park et al. 2019): z + condition -> seed map -> SPADE residual blocks with 2x upsampling -> RGB.
Noise and condition also reach every SPADE layer (OASIS-style, Schonfeld et al. 2021), so one label map gives many
images and can be rendered under each condition (day, dusk, night, ...)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import check_divisible, check_label_input, condition_vector
from synthlabel.nn.spade import SPADEResBlock
from synthlabel.registry import GENERATORS


@GENERATORS.register("spade")
class SPADEGenerator(nn.Module):
    """One-hot label map [B, K, H, W] (ignore pixels all-zero) + z [B, z_dim] + condition [B] (one of C ids, 0 = none)
    -> image [B, 3, H, W] in [-1, 1]. z goes to the seed map (H, W) / 2**num_up, fixed by `image_size`, and with
    `noise_in_spade` to every SPADE layer too (diversity). Channels are width at full resolution, width * 2**level
    coarser (at most width * 8); each SPADE layer has `spade_hidden` channels (default min(128, 2 * width)) and
    `norm` "instance" (same output in train and eval) or "batch"."""

    conditioning, channels = ("label_map", "condition", "noise"), 3

    def __init__(
        self,
        num_classes: int,
        num_conditions: int = 0,
        z_dim: int = 64,
        width: int = 32,
        num_up: int = 4,
        image_size: tuple[int, int] = (96, 128),
        norm: str = "instance",
        spade_hidden: int | None = None,
        noise_in_spade: bool = True,
    ):
        super().__init__()
        if z_dim < 1:
            raise ValueError("SPADE needs z_dim >= 1 (the seed map is predicted from z)")
        self.num_classes, self.num_conditions, self.z_dim = num_classes, num_conditions, z_dim
        self.image_size = check_divisible(image_size, 2**num_up, f"num_up={num_up}")
        self.seed_size = (self.image_size[0] >> num_up, self.image_size[1] >> num_up)
        self.noise_in_spade = noise_in_spade
        chans = [width * 2 ** min(num_up - i, 3) for i in range(num_up + 1)]
        code_dim = num_conditions + (z_dim if noise_in_spade else 0)
        hidden = spade_hidden or min(128, 2 * width)
        block = dict(label_channels=num_classes, hidden=hidden, norm=norm, code_dim=code_dim)
        self.fc = nn.Linear(z_dim + num_conditions, chans[0] * self.seed_size[0] * self.seed_size[1])
        self.head = SPADEResBlock(chans[0], chans[0], **block)
        self.up = nn.ModuleList(SPADEResBlock(chans[i], chans[i + 1], **block) for i in range(num_up))
        self.to_rgb = nn.Conv2d(chans[-1], 3, 3, padding=1)

    def forward(
        self,
        label_map_onehot: torch.Tensor,  # [B, K, H, W]
        z: torch.Tensor | None = None,  # [B, z_dim]; None draws fresh noise
        condition: torch.Tensor | None = None,  # [B] long; None = unknown condition (zero one-hot)
    ) -> torch.Tensor:  # [B, 3, H, W] in [-1, 1]
        check_label_input(label_map_onehot, self.num_classes, self.image_size)
        b = label_map_onehot.shape[0]
        if z is None:
            z = torch.randn(b, self.z_dim, device=label_map_onehot.device)
        cond = condition_vector(condition, self.num_conditions, b, z)
        seed_code = torch.cat([z, cond], dim=1)  # [B, z_dim + C]
        code = seed_code if self.noise_in_spade else cond
        x = self.fc(seed_code).view(b, -1, *self.seed_size)
        x = self.head(x, label_map_onehot, code)
        for block in self.up:
            x = block(F.interpolate(x, scale_factor=2.0, mode="nearest"), label_map_onehot, code)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))
