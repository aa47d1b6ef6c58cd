"""The pixel label head on the latent GAN's hypercolumns (DatasetGAN / HandsOff): every synthesis level's feature
map, read at a pixel's position (bilinear, as if upsampled to the output size), concatenated -> an ensemble of
small per-pixel classifiers. Pixels are sampled and their hypercolumns computed for the batch alone: the full-size
hypercolumns of an image (H x W x ~1000 floats) are never built for training, and generation reads them one band
of rows at a time. Per-pixel uncertainty is the ensemble's Jensen-Shannon divergence (generalized to M members:
the entropy of the mean minus the mean entropy)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-12


def hypercolumns_at(features: Sequence[torch.Tensor], ys: torch.Tensor, xs: torch.Tensor, size) -> torch.Tensor:
    """features: per level [B, C_l, h_l, w_l]; ys, xs: [B, P] pixel rows/cols at output size (H, W) -> [B, P, sum C_l]
    (each level bilinearly sampled at the pixel centre, align_corners=False: what upsampling the map would give)."""
    h, w = size
    grid = torch.stack([(xs.float() + 0.5) / w * 2 - 1, (ys.float() + 0.5) / h * 2 - 1], dim=-1)[:, None]  # [B,1,P,2]
    cols = [
        F.grid_sample(f.float(), grid.to(f.device), mode="bilinear", padding_mode="border", align_corners=False)
        for f in features
    ]  # each [B, C, 1, P]
    return torch.cat([c[:, :, 0].transpose(1, 2) for c in cols], dim=2)


def hypercolumn_rows(features: Sequence[torch.Tensor], rows: range, size) -> torch.Tensor:
    """The hypercolumns of whole rows `rows` of every image: [B, len(rows) * W, C] (one band at a time)."""
    h, w = size
    ys = torch.tensor(list(rows)).repeat_interleave(w)
    xs = torch.arange(w).repeat(len(rows))
    b = len(features[0])
    return hypercolumns_at(features, ys.expand(b, -1), xs.expand(b, -1), size)


class PixelEnsemble(nn.Module):
    """M independent per-pixel classifiers [N, C] -> logits [M, N, K]: input standardization (LayerNorm without
    affine: levels differ in scale), then Linear-ReLU-Linear-ReLU-Linear, as DatasetGAN's MLPs but smaller."""

    def __init__(self, in_features: int, num_classes: int, members: int = 5, hidden: int = 128):
        super().__init__()
        self.in_features, self.num_classes, self.members = in_features, num_classes, members
        self.norm = nn.LayerNorm(in_features, elementwise_affine=False)
        self.nets = nn.ModuleList(
            nn.Sequential(
                nn.Linear(in_features, hidden),
                nn.ReLU(),
                nn.Linear(hidden, hidden // 2),
                nn.ReLU(),
                nn.Linear(hidden // 2, num_classes),
            )  # fmt: skip
            for _ in range(members)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x.float())
        return torch.stack([net(x) for net in self.nets])


def js_divergence(probs: torch.Tensor) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence of M members' distributions [M, N, K] -> [N]: H(mean) - mean H.
    Zero when the members agree exactly; positive when they differ."""
    mean = probs.mean(0)
    h_mean = -(mean * (mean + EPS).log()).sum(-1)
    mean_h = -(probs * (probs + EPS).log()).sum(-1).mean(0)
    return (h_mean - mean_h).clamp(min=0)


class EnsembleCrossEntropy:
    """The head's task: cross-entropy of every member against the pixel labels (ignore skipped), averaged."""

    def __init__(self, ignore_index: int):
        self.ignore_index = ignore_index

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor, weights=None) -> torch.Tensor:
        m = outputs.shape[0]
        targets = targets.to(outputs.device)
        return F.cross_entropy(outputs.flatten(0, 1), targets.repeat(m), ignore_index=self.ignore_index)

    def count(self, targets: torch.Tensor, weights=None) -> float:
        return float((targets != self.ignore_index).sum())


def pixel_batches(
    generator: nn.Module, ws: torch.Tensor, labels: torch.Tensor, ignore_index: int, images_per_batch: int = 2,
    pixels_per_image: int = 2048,
) -> Callable:  # fmt: skip
    """Batches for the head: per step, `images_per_batch` of the inverted labeled images (their w in `ws` [N, w_dim],
    label maps [N, H, W]), `pixels_per_image` labeled pixels of each drawn uniformly, their hypercolumns from the
    frozen generator (fixed noise). Returns (step, g) -> (hypercolumns [B * P, C], labels [B * P])."""
    size = tuple(labels.shape[-2:])
    valid = (labels != ignore_index).flatten(1).float()  # [N, H*W]
    if (valid.sum(1) == 0).any():
        raise ValueError("a labeled image has no labeled pixel")

    @torch.no_grad()
    def batches(step: int, g: torch.Generator):
        idx = torch.randint(len(ws), (images_per_batch,), generator=g)
        flat = torch.multinomial(valid[idx], pixels_per_image, replacement=True, generator=g)  # [B, P]
        ys, xs = flat // size[1], flat % size[1]
        _, feats = generator.synthesize(ws[idx], noise_mode="const", features=True)
        cols = hypercolumns_at(feats, ys, xs, size)
        target = labels[idx].flatten(1).gather(1, flat)
        return cols.flatten(0, 1), target.flatten()

    return batches


@torch.no_grad()
def predict_maps(
    generator: nn.Module, head: PixelEnsemble, ws: torch.Tensor, rows_per_band: int = 16
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images [B, 3, H, W] in [-1, 1], label maps [B, H, W] (argmax of the members' mean probability), per-pixel
    JS divergence [B, H, W]) for latents ws, reading the hypercolumns one band of rows at a time."""
    head.eval()
    images, feats = generator.synthesize(ws, noise_mode="const", features=True)
    h, w = images.shape[-2:]
    labels, uncertainty = [], []
    for start in range(0, h, rows_per_band):
        band = range(start, min(h, start + rows_per_band))
        cols = hypercolumn_rows(feats, band, (h, w))  # [B, rows * W, C]
        probs = F.softmax(head(cols.flatten(0, 1)), -1)  # [M, B * rows * W, K]
        labels.append(probs.mean(0).argmax(-1).view(len(ws), len(band), w))
        uncertainty.append(js_divergence(probs).view(len(ws), len(band), w))
    return images, torch.cat(labels, 1), torch.cat(uncertainty, 1)
