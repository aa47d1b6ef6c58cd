"""The data contract: one labeled sample, and a dataset held in memory at a working resolution."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Sample:
    """One labeled image. image: [3, H, W] float32 in [-1, 1]; label: [H, W] int64 class ids (ignore index allowed)."""

    image: torch.Tensor
    label: torch.Tensor
    meta: dict = field(default_factory=dict)  # file, split, condition, sequence, frame, ...


@dataclass
class TensorSet:
    """A split loaded into memory at one resolution (fast batch sampling on CPU).

    images: [N, 3, H, W] uint8 (converted to [-1, 1] float per batch); labels: [N, H, W] int64.
    """

    images: torch.Tensor
    labels: torch.Tensor
    meta: list[dict]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> Sample:
        return Sample(to_float(self.images[index]), self.labels[index], dict(self.meta[index]))


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [.., 3, H, W] -> float32 in [-1, 1]."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (clamped)."""
    return images.float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)
