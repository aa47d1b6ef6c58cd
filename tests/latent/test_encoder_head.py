"""Issue 14's parts: the inversion encoder learns w from generated images; the hypercolumn sampler reads only its
batch of pixels (and equals upsample-then-gather); the ensemble's JS divergence is zero for identical members and
positive otherwise; the head learns labels from hypercolumns and predicts maps band by band."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from synthlabel.device import Precision
from synthlabel.generators import stylegan  # noqa: F401  (registers the latent GAN)
from synthlabel.latent import head as H
from synthlabel.latent.encoder import (
    LatentEncoder,
    LatentRegression,
    Reconstruction,
    generated_pairs,
    invert,
    real_images,
    refine,
    w_distance,
)
from synthlabel.registry import GENERATORS
from synthlabel.train.supervised import SupervisedConfig, SupervisedTrainer

CPU = Precision(torch.device("cpu"), False)


def tiny_gan(seed=0):
    torch.manual_seed(seed)
    G = GENERATORS.create("stylegan", z_dim=8, w_dim=8, width=4, max_channels=16, mapping_layers=2,
                          image_size=(16, 24)).eval()  # fmt: skip
    return G.requires_grad_(False)


def test_the_encoder_recovers_w_better_than_chance_after_a_few_steps():
    G = tiny_gan()
    E = LatentEncoder(8, width=8, levels=3)
    g = torch.Generator().manual_seed(1)
    w = G.map(torch.randn(32, 8, generator=g))
    E.w_avg.copy_(G.map(torch.randn(256, 8, generator=g)).mean(0))
    images = G.synthesize(w, noise_mode="const")
    chance = w_distance(w, w[torch.randperm(len(w), generator=g)])  # another image's latent
    before = w_distance(E(images), w)
    trainer = SupervisedTrainer(E, LatentRegression(), generated_pairs(G, 16),
                                SupervisedConfig(150, 16, 3e-3, 0.0, channels_last=False), CPU)  # fmt: skip
    trainer.fit()
    after = w_distance(E.eval()(images), w)
    assert after < 0.6 * chance and after < before


def test_reconstruction_phase_and_refinement_lower_the_image_error():
    G = tiny_gan()
    E = LatentEncoder(8, width=8, levels=3)
    g = torch.Generator().manual_seed(2)
    target = G.synthesize(G.map(torch.randn(8, 8, generator=g)), noise_mode="const")
    uint8 = ((target + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    task = Reconstruction(G)
    first = task.loss(E(target), target).item()
    trainer = SupervisedTrainer(E, task, real_images(uint8, 8, flip=False),
                                SupervisedConfig(40, 8, 3e-3, 0.0, channels_last=False), CPU)  # fmt: skip
    trainer.fit()
    w = invert(E, uint8)
    trained = task.loss(w, target).item()
    refined = task.loss(refine(G, w, target, 20), target).item()
    assert refined < trained < first


def test_hypercolumns_at_pixels_equal_upsample_then_gather():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 3, 4, 6, generator=g), torch.randn(2, 5, 8, 12, generator=g)]
    size = (16, 24)
    ys, xs = torch.randint(0, 16, (2, 7), generator=g), torch.randint(0, 24, (2, 7), generator=g)
    full = torch.cat([F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats], 1)
    expected = torch.stack([full[b, :, ys[b], xs[b]].T for b in range(2)])
    assert torch.allclose(H.hypercolumns_at(feats, ys, xs, size), expected, atol=1e-5)
    rows = H.hypercolumn_rows(feats, range(3, 5), size)
    assert torch.allclose(rows[0], full[0, :, 3:5].flatten(1).T, atol=1e-5)


def test_the_pixel_sampler_reads_only_its_batch_of_pixels_of_large_images(monkeypatch):
    """Images of 1000 x 1500 px with ~100 feature channels: a full hypercolumn image would be 150M floats; the
    sampler returns its B x P rows and never upsamples a feature map."""

    class FakeG:
        def synthesize(self, w, noise_mode="const", features=False):
            b = len(w)
            return None, [torch.randn(b, 64, 8, 12), torch.randn(b, 32, 16, 24)]

    monkeypatch.setattr(H.F, "interpolate", lambda *a, **k: pytest.fail("a feature map was upsampled"))
    labels = torch.zeros(3, 1000, 1500, dtype=torch.long)
    labels[:, :10] = 255
    batches = H.pixel_batches(FakeG(), torch.zeros(3, 4), labels, 255, images_per_batch=2, pixels_per_image=100)
    x, y = batches(0, torch.Generator().manual_seed(0))
    assert x.shape == (200, 96) and y.shape == (200,) and (y != 255).all()


def test_js_divergence_is_zero_for_identical_members_and_positive_otherwise():
    p = F.softmax(torch.randn(1, 10, 4), -1)
    assert torch.allclose(H.js_divergence(p.repeat(3, 1, 1)), torch.zeros(10), atol=1e-6)
    q = F.softmax(torch.randn(3, 10, 4), -1)
    assert (H.js_divergence(q) > 0).all()


def test_the_head_learns_labels_from_hypercolumns_and_predicts_maps_band_by_band():
    G = tiny_gan()
    g = torch.Generator().manual_seed(3)
    ws = G.map(torch.randn(4, 8, generator=g))
    images, feats = G.synthesize(ws, noise_mode="const", features=True)
    labels = (images.mean(1) > images.mean()).long()  # a label the features can tell: bright vs dark
    head = H.PixelEnsemble(sum(G.feature_channels), 2, members=3, hidden=32)
    batches = H.pixel_batches(G, ws, labels, 255, images_per_batch=2, pixels_per_image=256)
    SupervisedTrainer(head, H.EnsembleCrossEntropy(255), batches,
                      SupervisedConfig(150, 512, 3e-3, 0.0, channels_last=False), CPU).fit()  # fmt: skip
    _, pred, unc = H.predict_maps(G, head, ws, rows_per_band=5)
    assert pred.shape == labels.shape and unc.shape == labels.shape and (unc >= 0).all()
    assert (pred == labels).float().mean() > 0.85
    same = copy.deepcopy(head)
    for net in same.nets[1:]:
        net.load_state_dict(same.nets[0].state_dict())
    assert H.predict_maps(G, same, ws)[2].abs().max() < 1e-5  # identical members: no uncertainty
