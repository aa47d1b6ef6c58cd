"""Registry contract for every class generator, class discriminator and classifier: registering one is enough to
have it tested. Shapes, range, finite outputs, gradients to every parameter, save -> load -> identical output,
determinism under a seed, labels and noise that change the image, bf16 autocast + channels_last numerics."""

from __future__ import annotations

import pytest
import torch

from synthlabel.checkpoint import load_weights, read_model_config, save_model
from synthlabel.cls import classifiers, families
from synthlabel.registry import CLASS_DISCRIMINATORS, CLASS_GENERATORS, CLASSIFIERS

K, C, SIZE, B = 3, 1, (8, 8), 6
G_KW = {"num_classes": K, "channels": C, "image_size": list(SIZE), "width": 4, "z_dim": 8}  # as read from JSON
D_KW = {"num_classes": K, "channels": C, "image_size": list(SIZE), "width": 4}
FAMILIES, CLASSIFIER_NAMES = families(), classifiers()


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(K).repeat(B // K)  # balanced, as in training
    return torch.randn(B, G_KW["z_dim"], generator=g), labels, torch.rand(B, C, *SIZE, generator=g) * 2 - 1


def make(registry, name, kwargs, seed=0):
    torch.manual_seed(seed)
    return registry.create(name, **kwargs)


def assert_all_params_get_grads(net: torch.nn.Module) -> None:
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_families_and_classifiers_registered():
    assert {"dcgan", "cgan"} <= set(FAMILIES) and "cnn" in CLASSIFIER_NAMES


@pytest.mark.parametrize("name", FAMILIES)
def test_generator_shapes_range_backward(name):
    G = make(CLASS_GENERATORS, name, G_KW)
    z, labels, _ = inputs()
    y = G(z, labels)
    assert y.shape == (B, C, *SIZE) and torch.isfinite(y).all() and y.min() >= -1 and y.max() <= 1
    (y * torch.randn_like(y)).sum().backward()
    assert_all_params_get_grads(G)


@pytest.mark.parametrize("name", FAMILIES)
def test_generator_save_load_identical(name, tmp_path):
    G = make(CLASS_GENERATORS, name, G_KW)
    z, labels, _ = inputs()
    G(z, labels)  # a train-mode pass moves batch-norm statistics: they must be saved too
    G.eval()
    save_model(tmp_path / "g", name, G_KW, {"G": G})
    meta = read_model_config(tmp_path / "g")
    loaded = load_weights(tmp_path / "g", "G", make(CLASS_GENERATORS, meta["name"], meta["config"], seed=9)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(z, labels), G(z, labels))


@pytest.mark.parametrize("name", FAMILIES)
def test_generator_deterministic_and_uses_label_and_noise(name):
    a, b = make(CLASS_GENERATORS, name, G_KW, 1).eval(), make(CLASS_GENERATORS, name, G_KW, 1).eval()
    z, labels, _ = inputs()
    with torch.no_grad():
        base = a(z, labels)
        assert torch.equal(base, b(z, labels))
        assert (a(z, (labels + 1) % K) - base).abs().mean() > 1e-3
        assert (a(torch.randn_like(z), labels) - base).abs().mean() > 1e-3


@pytest.mark.parametrize("name", FAMILIES)
def test_generator_bf16_channels_last_close_to_fp32(name):
    G = make(CLASS_GENERATORS, name, G_KW).eval()
    z, labels, _ = inputs()
    with torch.no_grad():
        ref = G(z, labels)
        G = G.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = G(z, labels)
    assert torch.isfinite(y).all() and (y.float() - ref).abs().mean() < 0.05


@pytest.mark.parametrize("name", FAMILIES)
def test_discriminator_contract(name, tmp_path):
    D = make(CLASS_DISCRIMINATORS, name, D_KW)
    _, labels, images = inputs()
    out = D(images, labels)
    assert out.shape == (B,) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert_all_params_get_grads(D)
    D.eval()
    save_model(tmp_path / "d", name, D_KW, {"D": D})
    loaded = load_weights(tmp_path / "d", "D", make(CLASS_DISCRIMINATORS, name, D_KW, seed=9)).eval()
    with torch.no_grad():
        assert torch.equal(loaded(images, labels), D(images, labels))
        assert (D(images, (labels + 1) % K) - D(images, labels)).abs().mean() > 1e-6


def test_per_class_generators_are_independent():
    """dcgan's class k output depends on class k's weights only (channel groups never mix)."""
    G = make(CLASS_GENERATORS, "dcgan", G_KW)
    z, labels, _ = inputs()
    out = G(z, labels)
    out[labels == 1].sum().backward()
    k_channels = G.project.weight.shape[0] // K
    grads = G.project.weight.grad
    assert grads[k_channels : 2 * k_channels].abs().sum() > 0
    assert grads[:k_channels].abs().sum() == 0 and grads[2 * k_channels :].abs().sum() == 0


@pytest.mark.parametrize("name", FAMILIES)
def test_unbalanced_labels_and_bad_labels(name):
    G = make(CLASS_GENERATORS, name, G_KW).eval()
    z = torch.randn(4, G_KW["z_dim"])
    with torch.no_grad():
        alone = G(z[:1], torch.tensor([2]))
        mixed = G(z, torch.tensor([2, 2, 0, 2]))
    assert mixed.shape == (4, C, *SIZE) and torch.allclose(mixed[0], alone[0], atol=1e-6)  # eval: per-sample
    with pytest.raises(ValueError, match="labels must be in"):
        G(z, torch.tensor([0, 1, 2, K]))


@pytest.mark.parametrize("name", CLASSIFIER_NAMES)
def test_classifier_contract(name, tmp_path):
    kw = {"num_classes": K, "channels": C, "image_size": list(SIZE), "width": 4, "dropout": 0.0}
    m = make(CLASSIFIERS, name, kw)
    _, _, images = inputs()
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
