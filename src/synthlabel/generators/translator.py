"""Image -> image translators between conditions (day -> dusk, clear -> fog): the ResNet generator of CycleGAN and
CUT (Zhu et al. 2017; Park et al. 2020) with the target condition and the noise brought in by modulated instance
norm, and an image-only multi-scale PatchGAN that judges whether an image looks like the target condition.

Why modulation and not input planes (as `pix2pix` does): instance norm removes any spatially constant input, so a
condition or noise plane concatenated to the image would be normalized away in the first layer; a per-channel scale
and shift after every norm of the bottleneck and the decoder (AdaIN, as in MUNIT) keeps them. The encoder sees the
image only, so its features are the same for any target condition: PatchNCE compares them between a source image and
its translation (`train.losses.TranslationLoss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import check_divisible, condition_vector
from synthlabel.generators.discriminators import NLayerPatchGAN
from synthlabel.registry import DISCRIMINATORS, GENERATORS


class ModulatedNorm(nn.Module):
    """Instance norm whose scale and shift come from the code (target condition + noise): IN(x) * (1 + g) + b.
    Without a code (no conditions, no noise) it is an affine instance norm."""

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=code_dim == 0)
        self.to_scale_shift = nn.Linear(code_dim, 2 * channels) if code_dim else None

    def forward(self, x: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        x = self.norm(x)
        if self.to_scale_shift is None:
            return x
        scale, shift = self.to_scale_shift(code).to(x)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


class _ResBlock(nn.Module):
    """(reflect pad -> conv3x3 -> modulated IN -> ReLU) then (pad -> conv -> modulated IN), plus the input."""

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.conv_0 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm_0 = ModulatedNorm(channels, code_dim)
        self.conv_1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm_1 = ModulatedNorm(channels, code_dim)

    def forward(self, x: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        y = F.relu(self.norm_0(self.conv_0(x), code))
        return x + self.norm_1(self.conv_1(y), code)


class _Up(nn.Module):
    """2x nearest upsampling -> conv3x3 -> modulated IN -> ReLU (no checkerboard of transposed convs)."""

    def __init__(self, in_channels: int, out_channels: int, code_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")
        self.norm = ModulatedNorm(out_channels, code_dim)

    def forward(self, x: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest")), code))


@GENERATORS.register("resnet_translator")
class ResnetTranslator(nn.Module):
    """Image [B, 3, H, W] in [-1, 1] (+ target condition ids, + noise z) -> image of the same size in [-1, 1].

    Encoder: conv7x7 stem, `downs` stride-2 convs (width * 2**i channels), `blocks` residual blocks at the bottom;
    decoder: the mirror, with nearest upsampling. `residual`: the network predicts a change of the input in tanh's
    pre-activation space (out = tanh(atanh(x) + delta)), so it starts as the identity and keeps the content it is not
    told to change. H and W must be divisible by 2**downs. `num_classes` is 0: a translator never sees labels."""

    conditioning, channels, num_classes = ("image", "condition", "noise"), 3, 0

    def __init__(
        self,
        num_conditions: int = 0,
        width: int = 32,
        blocks: int = 6,
        downs: int = 2,
        z_dim: int = 0,
        image_size: tuple[int, int] = (96, 128),
        residual: bool = True,
    ):
        super().__init__()
        if blocks < 1 or downs < 1:
            raise ValueError(f"a translator needs blocks >= 1 and downs >= 1, got {blocks}, {downs}")
        self.num_conditions, self.z_dim, self.downs, self.residual = num_conditions, z_dim, downs, residual
        self.image_size = check_divisible(image_size, 2**downs, f"downs={downs}")
        code_dim = num_conditions + z_dim
        chans = [width * 2**i for i in range(downs + 1)]
        self.stem = nn.Sequential(
            nn.Conv2d(3, chans[0], 7, padding=3, padding_mode="reflect"), nn.InstanceNorm2d(chans[0], affine=True),
            nn.ReLU(),
        )  # fmt: skip
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1, padding_mode="reflect"),
                nn.InstanceNorm2d(chans[i + 1], affine=True),
                nn.ReLU(),
            )  # fmt: skip
            for i in range(downs)
        )
        self.blocks = nn.ModuleList(_ResBlock(chans[-1], code_dim) for _ in range(blocks))
        self.up = nn.ModuleList(_Up(chans[i + 1], chans[i], code_dim) for i in reversed(range(downs)))
        self.head = nn.Conv2d(chans[0], 3, 7, padding=3, padding_mode="reflect")
        with torch.no_grad():  # residual: start close to the identity (not at it: gradients must reach every layer)
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
        # the layers PatchNCE compares (stem, every down level, the middle of the residual blocks)
        self.feature_channels = (*chans, chans[-1])

    def code(self, image: torch.Tensor, condition: torch.Tensor | None, z: torch.Tensor | None) -> torch.Tensor | None:
        """[B, C + z_dim]: the target condition one-hot (zeros = unknown) and the noise; None when both are empty."""
        b = len(image)
        if self.num_conditions + self.z_dim == 0:
            return None
        parts = [condition_vector(condition, self.num_conditions, b, image.float())]
        if self.z_dim:
            z = torch.randn(b, self.z_dim, device=image.device) if z is None else z
            parts.append(z.float())
        return torch.cat(parts, dim=1)

    def encode(self, image: torch.Tensor, code: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the features PatchNCE compares, the bottleneck after the residual blocks)."""
        check_divisible(image.shape[-2:], 2**self.downs, f"downs={self.downs}")
        x = self.stem(image)
        features = [x]
        for block in self.down:
            x = block(x)
            features.append(x)
        for i, block in enumerate(self.blocks):
            x = block(x, code)
            if i == (len(self.blocks) - 1) // 2:
                features.append(x)
        return features, x

    def forward(
        self,
        image: torch.Tensor,  # [B, 3, H, W] in [-1, 1]
        z: torch.Tensor | None = None,  # [B, z_dim]; None draws fresh noise
        condition: torch.Tensor | None = None,  # [B] long target condition; None = unknown
    ) -> torch.Tensor:  # [B, 3, H, W] in [-1, 1]
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image batch [B, 3, H, W] in [-1, 1], got {list(image.shape)}")
        code = self.code(image, condition, z)
        _, x = self.encode(image, code)
        for block in self.up:
            x = block(x, code)
        delta = self.head(x)
        if not self.residual:
            return torch.tanh(delta)
        return torch.tanh(torch.atanh(image.float().clamp(-0.995, 0.995)).to(delta) + delta)


@DISCRIMINATORS.register("image_patchgan")
class ImagePatchGAN(nn.Module):
    """Multi-scale PatchGAN on image + condition planes (no label map): is this a real image of that condition?
    The discriminator of translators, kind "patch" (outputs as `patchgan`'s: per scale, features then logits)."""

    conditioning, kind = ("condition",), "patch"

    def __init__(
        self, num_conditions: int = 0, width: int = 32, num_scales: int = 2, n_layers: int = 3,
        norm: str = "instance", spectral_norm: bool = True,
    ):  # fmt: skip
        super().__init__()
        self.num_conditions = num_conditions
        self.scales = nn.ModuleList(
            NLayerPatchGAN(3 + num_conditions, width, n_layers, norm, spectral_norm) for _ in range(num_scales)
        )

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> list[list[torch.Tensor]]:
        planes = condition_vector(condition, self.num_conditions, len(image), image)[:, :, None, None]
        x = torch.cat([image, planes.expand(-1, -1, *image.shape[-2:])], dim=1)
        outputs = []
        for i, net in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(net(x))
        return outputs


class PatchProjector(nn.Module):
    """CUT's projection heads: per compared layer, a 2-layer MLP to a `dim`-d unit vector per sampled location.
    Trained with the generator (`TranslationLoss.g_modules`); not part of the saved translator."""

    def __init__(self, channels: tuple[int, ...], dim: int = 128):
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(c, dim), nn.ReLU(), nn.Linear(dim, dim)) for c in channels)

    def forward(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        """features [B, P, C] -> [B, P, dim], L2-normalized."""
        return F.normalize(self.heads[layer](features.float()), dim=-1)
