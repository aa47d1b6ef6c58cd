"""Adversarial losses, feature matching, OASIS losses, R1, and the Gmain/Dmain/Dreg phases of every kind of GAN on
every registered discriminator of that kind."""

import pytest
import torch

from synthlabel.generators import conditioned_on
from synthlabel.nn.labels import one_hot
from synthlabel.registry import DISCRIMINATORS, GENERATORS
from synthlabel.train import losses
from synthlabel.train.augment import DiffAugment
from synthlabel.train.batch import GANBatch

K, IGNORE, SIZE = 3, 255, (32, 48)


def test_hinge_and_nonsat_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    assert losses.d_loss(real, fake, "hinge") == pytest.approx(0.25 + 0.5)  # relu(1-r) + relu(1+f), means
    assert losses.g_loss(fake, "hinge") == pytest.approx(1.5)
    sp = torch.nn.functional.softplus
    assert losses.d_loss(real, fake, "nonsat") == pytest.approx(float(sp(-real).mean() + sp(fake).mean()))
    assert losses.g_loss(fake, "nonsat") == pytest.approx(float(sp(-fake).mean()))
    assert losses.d_loss(torch.full((4,), 5.0), torch.full((4,), -5.0), "hinge") == 0
    with pytest.raises(ValueError, match="wgan"):
        losses.g_loss(fake, "wgan")


def test_patch_losses_average_the_last_entry_of_each_scale():
    real = [
        [torch.randn(2, 4, 5, 5), torch.full((2, 1, 5, 5), 2.0)],
        [torch.randn(2, 4, 3, 3), torch.zeros(2, 1, 3, 3)],
    ]
    fake = [
        [torch.randn(2, 4, 5, 5), torch.full((2, 1, 5, 5), -2.0)],
        [torch.randn(2, 4, 3, 3), torch.ones(2, 1, 3, 3)],
    ]
    assert losses.patch_d_loss(real, fake) == pytest.approx((0 + (1 + 2)) / 2)
    assert losses.patch_g_loss(fake) == pytest.approx((2 - 1) / 2)


def test_feature_matching_is_zero_for_equal_features_and_trains_fake_only():
    real = [[torch.randn(2, 4, 5, 5, requires_grad=True), torch.randn(2, 1, 5, 5)]]
    fake = [[real[0][0].detach().clone().requires_grad_(True), torch.randn(2, 1, 5, 5)]]
    assert losses.feature_matching_loss(real, fake).item() == 0
    fake = [[(real[0][0].detach() + 1).requires_grad_(True), torch.randn(2, 1, 5, 5)]]
    fm = losses.feature_matching_loss(real, fake)
    assert fm.item() == pytest.approx(1.0)  # logits (last entry) are not matched
    fm.backward()
    assert fake[0][0].grad.abs().sum() > 0 and real[0][0].grad is None


def test_oasis_losses_reward_the_right_classes():
    target = torch.randint(0, K, (2, 8, 8))
    target[:, 0] = IGNORE
    right = 10 * one_hot(torch.where(target == IGNORE, 0, target), K + 1, IGNORE)  # [B, K + 1, H, W]
    fake_class = 10 * one_hot(torch.full_like(target, K), K + 1, IGNORE)
    good = losses.oasis_d_loss(right, fake_class, target, IGNORE)
    bad = losses.oasis_d_loss(fake_class, right, target, IGNORE)
    assert good < 1e-3 < 5 < bad
    assert losses.oasis_g_loss(right, target, IGNORE) < 1e-3 < 5 < losses.oasis_g_loss(fake_class, target, IGNORE)
    # ignore index equal to K (CamVid-style void right after the classes) must not hide the fake target
    assert losses.oasis_d_loss(fake_class, right, torch.where(target == IGNORE, K, target), K) > 5


def test_class_balanced_cross_entropy_gives_each_present_class_equal_weight():
    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, :1] = 1  # class 1: 10 % of the pixels, class 2 absent
    target[0, 9, :5] = 255
    logits = torch.zeros(1, 4, 10, 10)
    logits[:, 0] = 2.0  # confident class 0 everywhere: right on class 0, wrong on class 1
    ce = torch.nn.functional.cross_entropy(logits, target.clamp(max=3), reduction="none")[0]
    ce0, ce1 = ce[5, 5], ce[0, 0]
    balanced = losses.class_balanced_cross_entropy(logits, target, ignore_index=255)
    assert balanced == pytest.approx(float(ce0 + ce1) / 2, rel=1e-5)
    plain = losses.class_balanced_cross_entropy(logits, target, ignore_index=255, balance=False)
    assert plain == pytest.approx(float(ce0 * 85 + ce1 * 10) / 95, rel=1e-5)  # ignore pixels left out


def test_realness_sign_for_both_output_kinds():
    patch = [[torch.zeros(2, 4, 3, 3), torch.tensor([1.0, -1.0]).view(2, 1, 1, 1).expand(2, 1, 3, 3)]]
    assert losses.realness(patch).tolist() == [1.0, -1.0]
    seg = torch.zeros(2, K + 1, 4, 4)
    seg[0, 0], seg[1, K] = 5.0, 5.0  # sample 0 looks like class 0, sample 1 looks fake
    assert (losses.realness(seg).sign() == torch.tensor([1.0, -1.0])).all()


def test_r1_is_the_squared_input_gradient_and_differentiable():
    w = torch.randn(3, 4, 4, requires_grad=True)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    scores = (x * w).flatten(1).sum(1) ** 2 / 2  # d score / dx = s * w with s = sum(x * w)
    s = (x * w).flatten(1).sum(1).detach()
    penalty = losses.r1_penalty(scores, x)
    expected = (s**2 * w.detach().square().sum()).mean()
    assert penalty.item() > 0 and penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def tiny_pair(d_name: str):
    torch.manual_seed(0)
    G = GENERATORS.create("spade", num_classes=K, num_conditions=2, z_dim=8, width=8, image_size=list(SIZE))
    D = DISCRIMINATORS.create(d_name, num_classes=K, num_conditions=2, width=8)
    return G, D


def batch():
    torch.manual_seed(1)
    label_map = torch.randint(0, K, (2, *SIZE))
    label_map[:, :3] = IGNORE
    return GANBatch(torch.rand(2, 3, *SIZE) * 2 - 1, torch.randn(2, 8), label_map, torch.tensor([0, 1]))


@pytest.mark.parametrize("d_name", conditioned_on(DISCRIMINATORS, "label_map"))
def test_phases_train_the_right_network(d_name):
    G, D = tiny_pair(d_name)
    augment = DiffAugment(ignore_index=IGNORE)
    loss = losses.LabelImageLoss(G, D, K, IGNORE, augment=augment, r1_gamma=1.0, r1_interval=4)
    assert loss.phases(8) == ["Dmain", "Dreg", "Gmain"] and loss.phases(9) == ["Dmain", "Gmain"]
    g, stats = loss("Gmain", batch())
    g.backward()
    assert all(p.grad is not None for p in G.parameters()) and torch.isfinite(g)
    assert ("G/fm" in stats) == (D.kind == "patch") and stats["G/loss"] == pytest.approx(g.item())
    G.zero_grad(set_to_none=True)
    D.zero_grad(set_to_none=True)
    d, stats = loss("Dmain", batch())
    d.backward()
    assert all(p.grad is None for p in G.parameters())  # fake is detached in Dmain
    assert all(p.grad is not None for p in D.parameters()) and torch.isfinite(d)
    assert -1 <= stats["D/real_sign"] <= 1
    D.zero_grad(set_to_none=True)
    assert loss.wants_reg(8) and not loss.wants_reg(9)
    r, stats = loss("Dreg", batch())
    r.backward()
    assert stats["D/r1"] > 0 and r.item() == pytest.approx(stats["D/r1"] * 0.5 * 4, rel=1e-4)
    assert sum(float(p.grad.abs().sum()) for p in D.parameters() if p.grad is not None) > 0


def test_label_mix_is_zero_for_a_discriminator_that_mixes_its_outputs_like_its_inputs():
    """A D that is the identity per pixel (output = the image's channels) gives exactly the mixed target: the loss
    is 0; a real D gives a positive, differentiable term; a patch D refuses the option."""
    G, D = tiny_pair("oasis")
    loss = losses.LabelImageLoss(G, D, K, IGNORE, augment=DiffAugment(ignore_index=IGNORE), label_mix=10.0)
    b = batch()
    with torch.no_grad():
        fake = loss.generate(b)
    params = loss.augment_params(b, b.real)
    identity = losses.LabelImageLoss(G, D, K, IGNORE, augment=None, label_mix=10.0)
    identity.run_D = lambda image, label_map, condition, params: (image, label_map)
    assert identity.label_mix_loss(b, fake, b.real, fake, None).item() == pytest.approx(0.0, abs=1e-7)
    real_out, _ = loss.run_D(b.real, b.label_map, b.condition, params)
    fake_out, _ = loss.run_D(fake, b.label_map, b.condition, params)
    term = loss.label_mix_loss(b, fake, real_out, fake_out, params)
    term.backward()
    assert term.item() > 0 and any(p.grad is not None for p in D.parameters())
    d, stats = loss("Dmain", batch())
    assert stats["D/label_mix"] > 0 and torch.isfinite(d)
    with pytest.raises(ValueError, match="segmentation discriminator"):
        losses.LabelImageLoss(*tiny_pair("patchgan"), K, IGNORE, label_mix=1.0)


def test_augment_params_are_drawn_for_the_global_batch_and_sliced():
    """A rank's rows get the parameters a single process would give them (same draws, same RNG state after)."""
    G, D = tiny_pair("patchgan")
    loss = losses.LabelImageLoss(G, D, K, IGNORE, augment=DiffAugment(p=0.5, ignore_index=IGNORE))
    whole = batch()
    torch.manual_seed(5)
    full = loss.augment_params(whole, whole.real)
    state = torch.get_rng_state()
    torch.manual_seed(5)
    part = whole.local(slice(1, 2), torch.device("cpu"))
    mine = loss.augment_params(part, part.real)
    assert part.global_size == 2 and len(part) == 1 and torch.equal(state, torch.get_rng_state())
    for name in ("brightness", "saturation", "contrast", "translation", "cutout"):
        assert torch.equal(getattr(mine, name), getattr(full, name)[1:2]), name


@pytest.mark.parametrize("family", conditioned_on(GENERATORS, "class"))
def test_class_image_phases_train_the_right_network(family):
    torch.manual_seed(0)
    kw = {"num_classes": 3, "channels": 1, "image_size": (8, 8), "width": 4}
    G, D = GENERATORS.create(family, z_dim=8, **kw), DISCRIMINATORS.create(family, **kw)
    loss = losses.ClassImageLoss(G, D, DiffAugment(("translation", "cutout")), adversarial="nonsat")
    labels = torch.arange(3).repeat(2)
    b = GANBatch(torch.rand(6, 1, 8, 8) * 2 - 1, torch.randn(6, 8), labels=labels)
    assert loss.phases(0) == ["Dmain", "Gmain"]  # no R1
    d, stats = loss("Dmain", b)
    d.backward()
    assert all(p.grad is None for p in G.parameters()) and all(p.grad is not None for p in D.parameters())
    assert -1 <= stats["D/real_sign"] <= 1 and stats["D/loss"] == pytest.approx(d.item())
    D.zero_grad(set_to_none=True)
    g, stats = loss("Gmain", b)
    g.backward()
    assert all(p.grad is not None for p in G.parameters()) and torch.isfinite(g) and "G/loss" in stats
    with pytest.raises(ValueError, match="no phase 'Dreg'"):
        loss("Dreg", b)
