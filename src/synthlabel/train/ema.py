"""Exponential moving average of a network's weights (G_ema of StyleGAN / timm's ModelEmaV2), with timm's warm-up."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA(nn.Module):
    """Keeps `module`, a frozen copy of a model whose parameters track the model's as an EMA.

    Parameters: ema = decay * ema + (1 - decay) * model, with decay = min(decay, (1 + n) / (10 + n)) after n
    updates when `warmup` (so early, still-random weights are forgotten fast). Buffers (norm statistics, spectral
    norm vectors) are copied, as in StyleGAN, since averaging them would break their invariants. The update count
    is a buffer, so `state_dict()` holds everything needed to resume.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True):
        super().__init__()
        self.decay, self.warmup = decay, warmup
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.register_buffer("num_updates", torch.tensor(0, dtype=torch.long))

    def current_decay(self) -> float:
        """The decay the next `update` will use."""
        n = int(self.num_updates)
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average toward `model` (same architecture as the copied one)."""
        decay = self.current_decay()
        for ema_p, p in zip(self.module.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - decay)
        for ema_b, b in zip(self.module.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
        self.num_updates += 1

    def train(self, mode: bool = True) -> ModelEMA:
        """The averaged copy stays in eval mode (it is for sampling, never trained)."""
        super().train(mode)
        self.module.eval()
        return self
