"""A GAN training batch: the real images and the inputs a generator declares (noise, label map, condition, class,
source image), drawn as a pure function of (seed, step) for the whole global batch, then sliced to this rank's
rows."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch


def step_generator(seed: int, step: int) -> torch.Generator:
    """The RNG of one step's batch: resuming (or another rank) replays the same data and noise."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


@dataclass
class GANBatch:
    """One batch; fields a kind of GAN does not use stay None. `rows` and `global_size` say which rows of the global
    batch these are (losses draw per-sample randomness for the global batch and keep their rows)."""

    real: torch.Tensor  # [B, C, H, W] float in [-1, 1]
    z: torch.Tensor  # [B, z_dim]
    label_map: torch.Tensor | None = None  # [B, H, W] int64 ids
    condition: torch.Tensor | None = None  # [B] long; None = unconditioned / unknown
    labels: torch.Tensor | None = None  # [B] long class ids
    indices: torch.Tensor | None = None  # [B] long, rows of the training set
    source: torch.Tensor | None = None  # [B, C, H, W] in [-1, 1]: the images a translator translates
    rows: slice = field(default_factory=lambda: slice(None))
    global_size: int = 0

    def __post_init__(self) -> None:
        self.global_size = self.global_size or len(self.real)

    def __len__(self) -> int:
        return len(self.real)

    def local(self, rows: slice, device: torch.device) -> GANBatch:
        """Rows `rows` of this (global) batch on `device`, images channels-last."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v[rows].to(device) for k, v in values.items() if isinstance(v, torch.Tensor)}
        for key in ("real", "source"):
            if key in moved:
                moved[key] = moved[key].contiguous(memory_format=torch.channels_last)
        return replace(self, **moved, rows=rows, global_size=self.global_size)
