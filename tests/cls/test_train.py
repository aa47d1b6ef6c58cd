"""Classifier training with generated images: mixed batches hold their fraction, alternate batches alternate (the
segmenter's mixing sampler with fixed counts), classic augmentation keeps images in range, and the accuracy curve is
taken every k epochs."""

from __future__ import annotations

import pytest
import torch

from synthlabel.cls.config import ClassicAugmentConfig, ClassifierConfig
from synthlabel.cls.data import noise_images
from synthlabel.cls.train import batch_sampler, classic_augment, train_classifier
from synthlabel.downstream.mixing import MixedBatches
from synthlabel.errors import ConfigError
from synthlabel.train.batch import step_generator


def _synthetic(blob_set):
    return noise_images(10, blob_set.num_classes, 1, blob_set.image_size, 0.0, 0.5, seed=1)


def _batch(sampler, step: int, seed: int = 0):
    """(float images, labels, generated [B] bool) of a step, as the trainer draws it."""
    images, labels, generated = MixedBatches(sampler)(step, step_generator(seed, step))
    drawn = torch.tensor([s != 0 for s, _ in sampler.draw(step, step_generator(seed, step))])
    assert torch.equal(generated, drawn)  # the flags the trainer gets are the sampler's sources
    return images, labels, generated


@pytest.mark.parametrize("fraction, expected", [(0.25, 4), (0.5, 8), (0.4, 6)])
def test_mixed_batches_hold_their_generated_fraction(blob_set, fraction, expected):
    sampler = batch_sampler(blob_set, _synthetic(blob_set), 16, 12, "mixed", fraction)
    for step in range(12):
        images, labels, generated = _batch(sampler, step)
        assert images.shape == (16, 1, 8, 8) and int(generated.sum()) == expected
        # generated rows really come from the synthetic set: noise images are not the real blobs
        real_rows = images[~generated]
        assert all(any(torch.equal(r, x) for x in blob_set.as_float()) for r in real_rows)


def test_alternate_batches_alternate(blob_set):
    sampler = batch_sampler(blob_set, _synthetic(blob_set), 8, 10, "alternate", 0.5)
    kinds = []
    for step in range(10):
        _, _, generated = _batch(sampler, step)
        assert generated.all() or not generated.any()
        kinds.append(bool(generated.all()))
    assert kinds == [False, True] * 5


def test_alternate_share_follows_fraction(blob_set):
    alternate = batch_sampler(blob_set, _synthetic(blob_set), 8, 100, "alternate", 0.25)
    share = [alternate.synthetic_count(s, step_generator(0, s)) for s in range(100)]
    assert sum(1 for n in share if n) == 25 and max(share) == 8
    mixed = batch_sampler(blob_set, _synthetic(blob_set), 8, 100, "mixed", 0.25)
    assert [mixed.synthetic_count(s, step_generator(0, s)) for s in range(3)] == [2, 2, 2]
    with pytest.raises(ConfigError, match="mode"):
        batch_sampler(blob_set, None, 8, 100, "interleaved", 0.5)


def test_no_synthetic_means_all_real_and_batches_are_reproducible(blob_set):
    a = batch_sampler(blob_set, None, 8, 10, "mixed", 0.5)
    b = batch_sampler(blob_set, None, 8, 10, "mixed", 0.5)
    images, labels, generated = _batch(a, 5, seed=3)
    assert not generated.any()
    assert torch.equal(images, _batch(b, 5, seed=3)[0]) and not torch.equal(images, _batch(a, 6, seed=3)[0])


def test_classic_augment_moves_pixels_but_keeps_range(blob_set):
    x = blob_set.as_float()
    g = torch.Generator().manual_seed(0)
    y = classic_augment(x, ClassicAugmentConfig(), g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and (y - x).abs().mean() > 0.01
    identity = ClassicAugmentConfig(rotate=0.0, translate=0.0, scale=(1.0, 1.0))
    assert torch.allclose(classic_augment(x, identity, g), x, atol=1e-5)


def test_train_classifier_curve_every_k_epochs(blob_set):
    cfg = ClassifierConfig(width=4, epochs=6, batch_size=6, eval_every=2, lr=5e-3, precision="fp32")
    res = train_classifier(blob_set, cfg, _synthetic(blob_set), blob_set, "mixed", 0.25, augment=True, seed=0)
    per_epoch = 3  # 18 images / batch 6
    assert [p["step"] for p in res.curve] == [2 * per_epoch, 4 * per_epoch, 6 * per_epoch]
    assert [p["epoch"] for p in res.curve] == [2, 4, 6] and res.steps == 18
    again = train_classifier(blob_set, cfg, _synthetic(blob_set), blob_set, "mixed", 0.25, augment=True, seed=0)
    assert again.curve == res.curve  # deterministic under the seed


def test_classifier_learns_the_blobs(blob_set):
    cfg = ClassifierConfig(width=4, epochs=40, batch_size=6, eval_every=40, lr=1e-2, dropout=0.0, precision="fp32")
    assert train_classifier(blob_set, cfg, evaluation=blob_set, seed=0).final_accuracy == 1.0
