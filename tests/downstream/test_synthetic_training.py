"""Synthetic-aware training: a loss weight for extra-source samples, separate batch-norm statistics (real statistics
untouched by synthetic samples), copy-paste of real objects onto rendered scenes, and real-sample exposure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.config import CopyPasteConfig, MixConfig
from synthlabel.data.classes import ClassInfo, ClassSpec
from synthlabel.data.copy_paste import CopyPaste
from synthlabel.data.sample import TensorSet
from synthlabel.device import Precision
from synthlabel.downstream.mixing import MixedBatches, MixedSampler, Source, real_exposure
from synthlabel.train.batch import step_generator
from synthlabel.train.supervised import (
    Classification,
    Segmentation,
    SupervisedConfig,
    SupervisedTrainer,
    frozen_running_stats,
)

FP32 = Precision(torch.device("cpu"), False)


def test_sample_weights_scale_each_samples_share_of_the_mean():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(3, 4, 5, 6, generator=g), torch.randint(0, 4, (3, 5, 6), generator=g)
    labels[2, :2] = 255
    cw = torch.tensor([0.5, 1.0, 2.0, 1.5])
    task = Segmentation(255, cw)
    ones = torch.ones(3)
    assert task.loss(logits, labels, ones) == pytest.approx(float(task.loss(logits, labels)), rel=1e-6)
    assert task.count(labels, ones) == pytest.approx(task.count(labels))
    w = torch.tensor([1.0, 0.25, 0.0])  # the third sample drops out entirely
    expected = F.cross_entropy(logits[:2], labels[:2], weight=cw, ignore_index=255, reduction="none")
    expected = (expected * w[:2, None, None]).sum() / (cw[labels[:2]] * w[:2, None, None]).sum()
    assert task.loss(logits, labels, w) == pytest.approx(float(expected), rel=1e-6)
    c = Classification()
    assert c.loss(logits[:, :, 0, 0], labels[:2, 0, 0].repeat(2)[:3], torch.tensor([1.0, 1.0, 0.0])) == pytest.approx(
        float(F.cross_entropy(logits[:2, :, 0, 0], labels[:2, 0, 0].repeat(2)[:2]))
    )


class FlaggedData:
    """Batches of 8: 4 real (values near 0) then 4 extra (values near 5), with the extra flags."""

    def __call__(self, step: int, generator: torch.Generator):
        real = torch.randn(4, 2, 6, 6, generator=generator) * 0.1
        extra = 5 + torch.randn(4, 2, 6, 6, generator=generator)
        labels = torch.randint(0, 3, (8, 6, 6), generator=generator)
        return torch.cat([real, extra]), labels, torch.tensor([False] * 4 + [True] * 4)


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1))


def trainer(separate: bool, weight: float = 1.0) -> SupervisedTrainer:
    cfg = SupervisedConfig(2, 8, 1e-2, 0.0, seed=3, separate_bn=separate, extra_weight=weight, channels_last=False)
    return SupervisedTrainer(bn_model(), Segmentation(None), FlaggedData(), cfg, FP32)


def test_separate_bn_keeps_real_statistics_untouched_by_synthetic_samples():
    t = trainer(separate=True)
    bn = t.model[1]
    inputs, _, extra = t.batch(0)
    t.train_step(0)
    # the running statistics moved exactly as a forward pass of the real part alone moves them
    reference = bn_model()
    reference.train()
    reference(inputs[~extra])
    assert torch.allclose(bn.running_mean, reference[1].running_mean, atol=1e-6)
    assert torch.allclose(bn.running_var, reference[1].running_var, atol=1e-6)
    assert float(bn.running_mean.abs().max()) < 1.0  # the extra images (mean 5) never reached them
    mixed = trainer(separate=False)
    mixed.train_step(0)
    assert not torch.allclose(mixed.model[1].running_mean, bn.running_mean)  # without it, they do


def test_separate_bn_forward_keeps_the_batch_order():
    t = trainer(separate=True)
    t.model.eval()  # eval mode: outputs do not depend on the split, so the reassembled order can be checked
    x = torch.randn(8, 2, 6, 6)
    flags = torch.tensor([True, False, True, False, False, True, False, True])
    assert torch.allclose(t.forward(x, flags), t.model(x), atol=1e-6)


def test_frozen_running_stats_restores_statistics_and_counter():
    m = bn_model()
    before = [b.clone() for b in m[1].buffers()]
    with frozen_running_stats(m):
        m(torch.randn(4, 2, 6, 6) + 3)
    assert all(torch.equal(a, b) for a, b in zip(before, m[1].buffers(), strict=True))


def test_synthetic_weight_zero_trains_on_real_samples_only():
    # near-zero weight: the extra samples add nothing (separate_bn, so the real part is normalised by itself)
    a, b = trainer(True, weight=1e-12), trainer(True)
    inputs, labels, extra = a.batch(0)
    loss = a.train_step(0)
    with torch.no_grad():
        ref = Segmentation(None).loss(bn_model()(inputs[~extra]), labels[~extra])
    assert loss == pytest.approx(float(ref), rel=1e-4)
    assert b.train_step(0) != pytest.approx(loss, rel=1e-4)


def spec() -> ClassSpec:
    return ClassSpec((ClassInfo(0, "road", (1, 1, 1)), ClassInfo(1, "person", (2, 2, 2))), 255)


def test_copy_paste_onto_synthetic_pastes_real_objects_into_extra_samples_only():
    real = TensorSet(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.zeros(4, 16, 16, dtype=torch.long), [{}] * 4)
    real.images[:, :, 4:10, 4:10], real.labels[:, 4:10, 4:10] = 200, 1  # a person, with its real pixels
    synth = TensorSet(
        torch.full((6, 3, 16, 16), 50, dtype=torch.uint8), torch.zeros(6, 16, 16, dtype=torch.long), [{}] * 6
    )
    cp = CopyPaste(
        real, spec(), CopyPasteConfig(enabled=True, classes=("person",), prob=1.0, onto="synthetic", min_area=4)
    )
    sampler = MixedSampler([Source("real", real), Source("syn", synth)], MixConfig(fraction=0.5), 8, 10, seed=0)
    images, labels, extra = MixedBatches(sampler, cp)(0, step_generator(0, 0))
    assert extra.sum() == 4
    assert (labels[extra] == 1).any(dim=(1, 2)).all()  # every extra sample got a person
    assert ((images[extra] + 1) * 127.5).round().eq(200).any()  # with the real pixels
    assert torch.equal(labels[~extra], real.labels[: int((~extra).sum())])  # real samples left as they were


def test_real_exposure_follows_the_batch_share():
    mix = MixConfig(fraction=0.25, sources=({"path": "x"},))
    assert real_exposure(mix, 8, 100) == 600.0
    assert real_exposure(MixConfig(), 8, 100) == 800.0  # no sources: all real
    alt = MixConfig(mode="alternate", fraction=0.5, sources=({"path": "x"},))
    assert real_exposure(alt, 8, 100) == 400.0
    pre = MixConfig(mode="pretrain", pretrain=0.3, sources=({"path": "x"},))
    assert real_exposure(pre, 8, 100) == 560.0
