"""Copy-paste augmentation for segmentation (after Ghiasi et al. 2021, "Simple Copy-Paste"): segments of chosen
classes are cut with their pixels from real training images and pasted into others, labels included.

Road and indoor scenes have strong perspective, so a segment keeps its vertical position and size (a pedestrian
pasted at its own image row has a plausible scale there) and only shifts sideways and mirrors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from synthlabel.config import CopyPasteConfig
from synthlabel.data.classes import ClassSpec
from synthlabel.data.sample import TensorSet
from synthlabel.errors import ConfigError

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass
class Patch:
    """One segment cut out of a training image: its box, mask and pixels."""

    class_id: int
    source: int  # index of the image it came from
    y0: int
    x0: int
    mask: torch.Tensor  # [h, w] bool
    pixels: torch.Tensor  # [3, h, w] uint8


def below_median(shares) -> list[int]:
    """Ids of the classes present (share > 0) whose share is below the median share of the present classes: the
    default "rare" classes everywhere (copy-paste, the gain report)."""
    shares = np.asarray(shares, dtype=np.float64)
    present = shares > 0
    rare = present & (shares < np.median(shares[present])) if present.sum() >= 2 else present
    return [int(c) for c in np.flatnonzero(rare)]


def rare_classes(labels: torch.Tensor, spec: ClassSpec) -> list[int]:
    """Classes present in `labels` whose pixel share is below the median pixel share of the present classes."""
    valid = labels[(labels >= 0) & (labels < spec.num_classes)]
    return below_median(torch.bincount(valid.flatten(), minlength=spec.num_classes).numpy())


def resolve_classes(names: Sequence[str] | None, labels: torch.Tensor, spec: ClassSpec) -> list[int]:
    if names is None:
        return rare_classes(labels, spec)
    unknown = [n for n in names if n not in spec.names]
    if unknown:
        raise ConfigError(f"train.copy_paste.classes: unknown classes {unknown}; the data has {spec.names}")
    return [spec.names.index(n) for n in names]


def extract_patches(data: TensorSet, class_ids: Sequence[int], min_area: int) -> list[Patch]:
    """Every 8-connected segment of the given classes with at least `min_area` pixels."""
    patches = []
    for i in range(len(data)):
        label = data.labels[i].numpy()
        for c in class_ids:
            comp, _ = ndimage.label(label == c, structure=_EIGHT)
            for k, sl in enumerate(ndimage.find_objects(comp), start=1):
                mask = comp[sl] == k
                if mask.sum() >= min_area:
                    pixels = data.images[i][:, sl[0], sl[1]].clone()
                    patches.append(Patch(c, i, sl[0].start, sl[1].start, torch.from_numpy(mask), pixels))
    return patches


class CopyPaste:
    """Pastes patches into uint8 batches; all randomness comes from the caller's generator (replayable)."""

    def __init__(self, data: TensorSet, spec: ClassSpec, cfg: CopyPasteConfig):
        self.cfg = cfg
        self.class_ids = resolve_classes(cfg.classes, data.labels, spec)
        self.patches = extract_patches(data, self.class_ids, cfg.min_area)

    def __len__(self) -> int:
        return len(self.patches)

    def __call__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        sources: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 3, H, W] uint8, labels [B, H, W] -> pasted copies. sources[b] = the image index of sample b,
        so a sample never receives its own segments (None = unknown)."""
        images, labels = images.clone(), labels.clone()
        if not self.patches:
            return images, labels
        b = images.shape[0]
        u = torch.rand(b, generator=generator)
        counts = torch.randint(1, self.cfg.max_pastes + 1, (b,), generator=generator)
        for j in range(b):
            if u[j] >= self.cfg.prob:
                continue
            for k in torch.randint(len(self.patches), (int(counts[j]),), generator=generator).tolist():
                if sources is None or self.patches[k].source != sources[j]:
                    self._paste(images[j], labels[j], self.patches[k], generator)
        return images, labels

    def _paste(self, image: torch.Tensor, label: torch.Tensor, patch: Patch, generator: torch.Generator) -> None:
        mask, pixels = patch.mask, patch.pixels
        if torch.rand(1, generator=generator).item() < 0.5:
            mask, pixels = mask.flip(-1), pixels.flip(-1)
        h, w = mask.shape
        height, width = label.shape
        if h > height or w > width:
            return
        shift = round((torch.rand(1, generator=generator).item() * 2 - 1) * self.cfg.shift * width)
        x0 = min(max(patch.x0 + shift, 0), width - w)
        y0 = min(patch.y0, height - h)
        region = (slice(y0, y0 + h), slice(x0, x0 + w))
        label[region] = torch.where(mask, torch.tensor(patch.class_id, dtype=label.dtype), label[region])
        image[:, region[0], region[1]] = torch.where(mask[None], pixels, image[:, region[0], region[1]])
