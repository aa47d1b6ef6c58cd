"""Registry contract for every classifier: registering one is enough to have it tested. Shapes, finite outputs,
gradients to every parameter, save -> load -> identical output, bf16 autocast + channels_last numerics. (The class
-> image GAN families are generators like any other: tests/generators/test_contract.py covers them.)"""

from __future__ import annotations

import pytest
import torch

from synthlabel.checkpoint import load_weights, save_model
from synthlabel.cls import classifiers, families
from synthlabel.registry import CLASSIFIERS, DISCRIMINATORS, GENERATORS

K, C, SIZE, B = 3, 1, (8, 8), 6
FAMILIES, CLASSIFIER_NAMES = families(), classifiers()


def make(registry, name, kwargs, seed=0):
    torch.manual_seed(seed)
    return registry.create(name, **kwargs)


def assert_all_params_get_grads(net: torch.nn.Module) -> None:
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_families_and_classifiers_registered():
    assert {"dcgan", "cgan"} <= set(FAMILIES) and "cnn" in CLASSIFIER_NAMES
    for family in FAMILIES:  # a family is a class-conditioned generator with a discriminator of the same name
        assert "class" in GENERATORS.get(family).conditioning and "class" in DISCRIMINATORS.get(family).conditioning
    assert not {"spade", "pix2pix"} & set(FAMILIES)


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_classifier_contract(name, tmp_path):
    kw = {"num_classes": K, "channels": C, "image_size": list(SIZE), "width": 4, "dropout": 0.0}
    m = make(CLASSIFIERS, name, kw)
    images = torch.rand(B, C, *SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = m(images)
    assert out.shape == (B, K) and torch.isfinite(out).all()
    out.sum().backward()
    assert_all_params_get_grads(m)
    m.eval()
    save_model(tmp_path / "c", name, kw, {"model": m})
    loaded = load_weights(tmp_path / "c", "model", make(CLASSIFIERS, name, kw, seed=5)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(images), m(images))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m.to(memory_format=torch.channels_last)(images.contiguous(memory_format=torch.channels_last))
    assert (low.float() - loaded(images)).abs().mean() < 0.05
