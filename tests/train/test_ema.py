"""EMA of the generator: timm warm-up, decay 0 copies, convergence, buffers copied, state saved."""

import pytest
import torch
from torch import nn

from synthlabel.train.ema import ModelEMA


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def shifted(model: nn.Module, by: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(by)


def test_warmup_decay_follows_timm():
    model = net()
    ema = ModelEMA(model, decay=0.99)
    start = ema.module[0].weight.clone()
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    shifted(model, 1.0)
    ema.update(model)
    assert torch.allclose(ema.module[0].weight, 0.1 * start + 0.9 * model[0].weight)
    assert ema.current_decay() == pytest.approx(2 / 11)
    for _ in range(5000):
        ema.num_updates += 1
    assert ema.current_decay() == 0.99
    assert ModelEMA(model, decay=0.99, warmup=False).current_decay() == 0.99


def test_decay_zero_copies_and_fixed_decay_converges():
    model = net()
    ema = ModelEMA(model, decay=0.0)
    shifted(model, 0.5)
    ema.update(model)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), model.parameters(), strict=True))
    slow = ModelEMA(net(), decay=0.9, warmup=False)
    shifted(model, 1.0)
    gap = (slow.module[0].weight - model[0].weight).abs().max().item()
    slow.update(model)
    assert (slow.module[0].weight - model[0].weight).abs().max().item() == pytest.approx(0.9 * gap, rel=1e-5)
    for _ in range(200):
        slow.update(model)
    assert torch.allclose(slow.module[0].weight, model[0].weight, atol=1e-6)


def test_buffers_copied_frozen_eval_and_state_round_trip():
    model = net()
    model(torch.randn(2, 3, 8, 8))  # moves BatchNorm running stats
    ema = ModelEMA(net(), decay=0.999)
    ema.update(model)
    assert torch.equal(ema.module[1].running_mean, model[1].running_mean)
    assert not any(p.requires_grad for p in ema.parameters())
    ema.train()
    assert not ema.module.training
    restored = ModelEMA(net())
    restored.load_state_dict(ema.state_dict())
    assert int(restored.num_updates) == 1
    assert torch.equal(restored.module[0].weight, ema.module[0].weight)
