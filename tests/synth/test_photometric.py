"""Photometric condition simulation: deterministic per seed, darker at dusk and night, hazier toward the top under
fog, images only (labels are never an input), clear errors for unknown conditions."""

from __future__ import annotations

import pytest
import torch

from synthlabel.synth.photometric import CONDITIONS, simulate


def scenes(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, 3, 24, 32, generator=g) * 200 + 30).to(torch.uint8)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_is_deterministic_and_keeps_the_shape(condition):
    x = scenes()
    a = simulate(x, condition, torch.Generator().manual_seed(1))
    b = simulate(x, condition, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.uint8 and torch.equal(a, b)
    assert not torch.equal(a, simulate(x, condition, torch.Generator().manual_seed(2)))
    assert torch.equal(simulate(x, condition, torch.Generator().manual_seed(1), strength=0.0), x)


def test_dusk_and_night_darken_fog_washes_out_the_far_rows():
    x = scenes()
    g = torch.Generator().manual_seed(0)
    dusk, night = simulate(x, "dusk", g).float().mean(), simulate(x, "night", g).float().mean()
    assert night < dusk < x.float().mean()
    fog = simulate(x, "fog", g).float()
    spread = fog.std(dim=(1, 3))  # [B, H]: haze flattens the far (top) rows more than the near ones
    assert (spread[:, :4].mean() < 0.6 * spread[:, -4:].mean()).item()


def test_unknown_condition_and_wrong_input_are_named():
    with pytest.raises(ValueError, match="known: dusk, night, fog, snow"):
        simulate(scenes(), "rain", torch.Generator())
    with pytest.raises(ValueError, match="uint8 images"):
        simulate(scenes().float(), "dusk", torch.Generator())
