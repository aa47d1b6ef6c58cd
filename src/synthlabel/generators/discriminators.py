"""Discriminators for label map -> image GANs (conditioning: label map + condition): multi-scale conditional PatchGAN
with features for feature matching (pix2pixHD, Wang et al. 2018), kind "patch", and the OASIS segmentation
discriminator with K+1 classes (Schonfeld et al. 2021), kind "segmentation"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.generators.common import check_label_input, condition_planes, maybe_spectral_norm
from synthlabel.nn.blocks import norm_layer
from synthlabel.registry import DISCRIMINATORS


class NLayerPatchGAN(nn.Module):
    """70x70-style PatchGAN at one scale: conv4x4 stride 2 x n_layers, then two stride-1 convs to 1 logit map."""

    def __init__(self, in_channels: int, width: int = 32, n_layers: int = 3, norm: str = "instance", sn: bool = True):
        super().__init__()
        chans = [in_channels] + [width * 2 ** min(i, 3) for i in range(n_layers + 1)]
        self.layers = nn.ModuleList()
        for i in range(n_layers + 1):
            stride, layer_norm = (2 if i < n_layers else 1), (norm if i > 0 else "none")
            conv = nn.Conv2d(chans[i], chans[i + 1], 4, stride=stride, padding=2, bias=layer_norm == "none")
            act = nn.LeakyReLU(0.2)
            self.layers.append(nn.Sequential(maybe_spectral_norm(conv, sn), norm_layer(layer_norm, chans[i + 1]), act))
        self.layers.append(maybe_spectral_norm(nn.Conv2d(chans[-1], 1, 4, stride=1, padding=2), sn))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B, C, H, W] -> [feature_1, ..., feature_n, logits [B, 1, h, w]]."""
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


@DISCRIMINATORS.register("patchgan")
class MultiScalePatchGAN(nn.Module):
    """PatchGANs on the image pyramid of image + one-hot label map + condition planes (in_channels = 3 + K + C).

    Returns, per scale (full resolution first), the intermediate features for feature matching followed by the
    patch logits. `spectral_norm` wraps every conv (stabilizes small-data training).
    """

    conditioning, kind = ("label_map", "condition"), "patch"

    def __init__(
        self,
        num_classes: int,
        num_conditions: int = 0,
        width: int = 32,
        num_scales: int = 2,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = True,
    ):
        super().__init__()
        self.num_classes, self.num_conditions = num_classes, num_conditions
        in_channels = 3 + num_classes + num_conditions
        self.scales = nn.ModuleList(
            NLayerPatchGAN(in_channels, width, n_layers, norm, spectral_norm) for _ in range(num_scales)
        )

    def forward(
        self,
        image: torch.Tensor,  # [B, 3, H, W]
        label_map_onehot: torch.Tensor,  # [B, K, H, W]
        condition: torch.Tensor | None = None,  # [B] long
    ) -> list[list[torch.Tensor]]:  # per scale: [features..., logits [B, 1, h, w]]
        check_label_input(label_map_onehot, self.num_classes, image.shape[-2:])
        cond = condition_planes(condition, self.num_conditions, image)
        x = torch.cat([image, label_map_onehot.to(image), cond], dim=1)
        outputs = []
        for i, net in enumerate(self.scales):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(net(x))
        return outputs


class _ResBlock(nn.Module):
    """OASIS discriminator block: (LeakyReLU -> conv3x3) x 2 [-> avg pool], plus a 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, down: bool, sn: bool):
        super().__init__()
        self.conv_0 = maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 3, padding=1), sn)
        self.conv_1 = maybe_spectral_norm(nn.Conv2d(out_channels, out_channels, 3, padding=1), sn)
        self.shortcut = maybe_spectral_norm(nn.Conv2d(in_channels, out_channels, 1), sn)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.conv_1(F.leaky_relu(self.conv_0(F.leaky_relu(x, 0.2)), 0.2))
        out = self.shortcut(x) + dx
        return F.avg_pool2d(out, 2) if self.down else out


@DISCRIMINATORS.register("oasis")
class OASISDiscriminator(nn.Module):
    """U-Net encoder-decoder classifying every pixel into K real classes or "fake" (channel K).

    Sees only the image (+ condition planes); the label map is its target, not its input, which gives rare
    classes their own loss term (class-balanced cross-entropy, see synthlabel.train.losses). Works at any H, W.
    """

    conditioning, kind = ("label_map", "condition"), "segmentation"

    def __init__(
        self, num_classes: int, num_conditions: int = 0, width: int = 32, depth: int = 4, spectral_norm: bool = True
    ):
        super().__init__()
        self.num_classes, self.num_conditions = num_classes, num_conditions
        chans = [width * 2 ** min(i, 3) for i in range(depth + 1)]
        self.stem = maybe_spectral_norm(nn.Conv2d(3 + num_conditions, chans[0], 3, padding=1), spectral_norm)
        self.down = nn.ModuleList(_ResBlock(chans[i], chans[i + 1], True, spectral_norm) for i in range(depth))
        self.up = nn.ModuleList(
            _ResBlock(chans[i + 1] + chans[i], chans[i], False, spectral_norm) for i in reversed(range(depth))
        )
        self.head = maybe_spectral_norm(nn.Conv2d(chans[0], num_classes + 1, 1), spectral_norm)

    def forward(
        self,
        image: torch.Tensor,  # [B, 3, H, W]
        label_map_onehot: torch.Tensor | None = None,  # unused: the label map is the target, not an input
        condition: torch.Tensor | None = None,  # [B] long
    ) -> torch.Tensor:  # [B, K + 1, H, W]
        x = self.stem(torch.cat([image, condition_planes(condition, self.num_conditions, image)], dim=1))
        skips = [x]
        for block in self.down:
            skips.append(block(skips[-1]))
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        return self.head(F.leaky_relu(x, 0.2))
