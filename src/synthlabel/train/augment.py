"""Differentiable augmentation for small-data GAN training: DiffAugment's ops (Zhao et al. 2020) gated per sample by
a probability `p` that can adapt to discriminator overfitting as in ADA (Karras et al. 2020). Parameters are sampled
once and replayed on real and fake batches and on their label maps, so image and labels keep the same geometry."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

OPS = ("brightness", "saturation", "contrast", "translation", "cutout")
TRANSLATION, CUTOUT = 0.125, 0.5  # DiffAugment's largest shift and its rectangle, as fractions of H and W


@dataclass
class AugmentParams:
    """Per-sample parameters, at their identity value where an op is off for that sample."""

    brightness: torch.Tensor  # [B] added to the image; 0 = off
    saturation: torch.Tensor  # [B] factor on the distance to the gray value; 1 = off
    contrast: torch.Tensor  # [B] factor on the distance to the image mean; 1 = off
    translation: torch.Tensor  # [B, 2] long pixels (dy, dx); 0 = off
    cutout: torch.Tensor  # [B, 4] long (top, left, height, width); height 0 = off

    def select(self, rows: slice | torch.Tensor) -> AugmentParams:
        """The parameters of some samples (e.g. this rank's rows of parameters drawn for the global batch)."""
        return AugmentParams(*(getattr(self, f.name)[rows] for f in fields(self)))


def translate(x: torch.Tensor, shift: torch.Tensor, fill: float | int) -> torch.Tensor:
    """out[..., y, x] = x[..., y - dy, x - dx] for x [B, C, H, W] and shift [B, 2]; outside -> `fill`.

    A gather, so it is exact for label ids and differentiable for images."""
    b, c, h, w = x.shape
    shift = shift.to(x.device)
    ys = torch.arange(h, device=x.device)[None] - shift[:, :1]  # [B, H]
    xs = torch.arange(w, device=x.device)[None] - shift[:, 1:]  # [B, W]
    inside = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]  # [B, H, W]
    index = ys.clamp(0, h - 1)[:, :, None] * w + xs.clamp(0, w - 1)[:, None, :]
    out = x.reshape(b, c, h * w).gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    return torch.where(inside[:, None], out, torch.full_like(out, fill))


def cutout_keep_mask(cutout: torch.Tensor, size: tuple[int, int], device=None) -> torch.Tensor:
    """[B, 4] (top, left, height, width) -> [B, 1, H, W] float mask, 0 inside the rectangle."""
    cutout = cutout.to(device)
    ys = torch.arange(size[0], device=device)[None]
    xs = torch.arange(size[1], device=device)[None]
    in_y = (ys >= cutout[:, :1]) & (ys < cutout[:, :1] + cutout[:, 2:3])  # [B, H]
    in_x = (xs >= cutout[:, 1:2]) & (xs < cutout[:, 1:2] + cutout[:, 3:4])  # [B, W]
    return (~(in_y[:, :, None] & in_x[:, None, :]))[:, None].float()


def color(image: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """DiffAugment's brightness, saturation and contrast on images [B, 3, H, W] in [-1, 1]."""
    view = (-1, 1, 1, 1)
    x = image + params.brightness.to(image).view(view)
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * params.saturation.to(image).view(view) + gray
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * params.contrast.to(image).view(view) + mean


class DiffAugment(nn.Module):
    """Paired differentiable augmentation of the `policy` ops ("color", "translation", "cutout"), each applied per
    sample with probability `p` (a buffer, saved with the state_dict; default 1 = plain DiffAugment, 0 when `adaptive`:
    `update` then moves p toward ADA's `target` sign of the real logits, from 0 to 1 in `ada_images` images; ADA uses
    500k). As in DiffAugment, translation moves image and labels by whole pixels (pixels shifted in are 0 in the
    image, `ignore_index` in id maps, all-zero = "no label" in one-hot maps); cutout zeroes a rectangle of the image
    only (real and fake get the same hole, so the unchanged labels there tell D nothing); color (brightness,
    saturation, contrast) changes images only."""

    def __init__(
        self,
        policy: tuple[str, ...] = ("color", "translation", "cutout"),
        p: float | None = None,
        adaptive: bool = False,
        target: float = 0.6,
        ada_images: int = 100_000,
        ignore_index: int = 255,
    ):
        super().__init__()
        unknown = set(policy) - {"color", "translation", "cutout"}
        if unknown:
            raise ValueError(f"unknown augmentation ops {sorted(unknown)}; use color, translation, cutout")
        self.policy, self.adaptive, self.target, self.ada_images = tuple(policy), adaptive, target, ada_images
        self.ignore_index = ignore_index
        self.register_buffer("p", torch.tensor(float(p if p is not None else (0.0 if adaptive else 1.0))))

    def _gate(self, batch: int, op: str, generator: torch.Generator | None) -> torch.Tensor:
        """[B] bool: which samples get `op` (always draws, so the random stream does not depend on the policy)."""
        draw = torch.rand(batch, generator=generator) < float(self.p)
        group = "color" if op in ("brightness", "saturation", "contrast") else op
        return draw & (group in self.policy)

    def sample(self, batch: int, size: tuple[int, int], generator: torch.Generator | None = None) -> AugmentParams:
        """Draw parameters for a batch of `size` (H, W) images, to replay on real, fake and their label maps."""
        h, w = size
        on = {op: self._gate(batch, op, generator) for op in OPS}
        u = torch.rand(batch, 7, generator=generator)
        shift_max = torch.tensor([int(h * TRANSLATION + 0.5), int(w * TRANSLATION + 0.5)])
        shift = (u[:, 3:5] * (2 * shift_max + 1)).long().clamp(max=2 * shift_max) - shift_max
        cut = torch.tensor([int(h * CUTOUT + 0.5), int(w * CUTOUT + 0.5)])
        center = (u[:, 5:7] * torch.tensor([h, w])).long()
        return AugmentParams(
            brightness=torch.where(on["brightness"], u[:, 0] - 0.5, 0.0),
            saturation=torch.where(on["saturation"], u[:, 1] * 2, 1.0),
            contrast=torch.where(on["contrast"], u[:, 2] + 0.5, 1.0),
            translation=shift * on["translation"][:, None],
            cutout=torch.cat([center - cut // 2, cut.expand(batch, 2) * on["cutout"][:, None]], dim=1),
        )

    def forward(
        self, image: torch.Tensor, *label_maps: torch.Tensor, params: AugmentParams | None = None
    ) -> tuple[torch.Tensor, ...]:
        """image [B, 3, H, W]; label maps int64 ids [B, H, W] or float one-hot [B, K, H, W].

        Returns (image, *label_maps) augmented with `params` (sampled here when None). The params alone decide
        what is applied (the policy and p only shape `sample`), so a replay is exact."""
        if params is None:
            params = self.sample(image.shape[0], tuple(image.shape[-2:]))
        if (params.brightness != 0).any() or (params.saturation != 1).any() or (params.contrast != 1).any():
            image = color(image, params)
        if params.translation.any():
            image = translate(image, params.translation, 0.0)
            label_maps = tuple(self._translate_labels(m, params.translation) for m in label_maps)
        if params.cutout[:, 2].any():
            image = image * cutout_keep_mask(params.cutout, image.shape[-2:], image.device).to(image)
        return (image, *label_maps)

    def _translate_labels(self, label_map: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        if label_map.is_floating_point():
            return translate(label_map, shift, 0.0)  # one-hot: outside = no label
        return translate(label_map[:, None], shift, self.ignore_index)[:, 0]

    @torch.no_grad()
    def update(self, real_logits_sign_mean: float, num_images: int = 1) -> float:
        """ADA: raise p when E[sign(D(real))] > target (D overfits), lower it otherwise, by num_images / ada_images.

        A no-op unless `adaptive`. Returns the new p."""
        if self.adaptive:
            step = num_images / self.ada_images
            direction = 1.0 if float(real_logits_sign_mean) > self.target else -1.0
            self.p.copy_((self.p + direction * step).clamp(0.0, 1.0))
        return float(self.p)
