"""The supervised trainer: task losses are PyTorch's means over their count, the schedules, and exact resume of the
whole training state, augmentation hooks with their own generator included."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthlabel.cls.config import ClassicAugmentConfig
from synthlabel.cls.train import ClassicAugment
from synthlabel.device import Precision
from synthlabel.train.batch import step_generator
from synthlabel.train.supervised import (
    Classification,
    Segmentation,
    SupervisedConfig,
    SupervisedTrainer,
    lr_lambda,
)

FP32 = Precision(torch.device("cpu"), False)


def test_segmentation_loss_is_the_weighted_mean_over_valid_pixels():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(2, 3, 5, 6, generator=g), torch.randint(0, 3, (2, 5, 6), generator=g)
    labels[0, 0] = 255
    weights = torch.tensor([0.5, 1.0, 2.0])
    task = Segmentation(255, weights)
    assert torch.equal(task.loss(logits, labels), F.cross_entropy(logits, labels, weight=weights, ignore_index=255))
    total = F.cross_entropy(logits, labels, weight=weights, ignore_index=255, reduction="sum")
    assert task.count(labels) == pytest.approx(float(weights[labels[labels != 255]].sum()))
    assert task.loss(logits, labels) * task.count(labels) == pytest.approx(float(total), rel=1e-6)
    assert Segmentation(255).count(labels) == (labels != 255).sum() and Classification().count(labels[:, 0, 0]) == 2


def test_schedules():
    def factors(schedule, **kw):
        f = lr_lambda(SupervisedConfig(10, 2, 1e-3, 0.0, schedule, **kw))
        return [f(s) for s in range(11)]

    poly = factors("poly", warmup_steps=2, poly_power=1.0)
    assert poly[:3] == [0.5, 1.0, 1.0] and poly[6] == pytest.approx(0.5) and poly[10] == 0.0
    cosine = factors("cosine")
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.5) and cosine[10] == pytest.approx(0.0)
    assert factors("constant") == [1.0] * 11


class Data:
    """Random 1-channel 8x8 images of 3 classes; a batch is a pure function of the step's generator."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.images, self.labels = torch.rand(30, 1, 8, 8, generator=g) * 2 - 1, torch.randint(0, 3, (30,), generator=g)

    def __call__(self, step: int, generator: torch.Generator):
        idx = torch.randint(30, (6,), generator=generator)
        return self.images[idx], self.labels[idx]


def trainer(state_path, steps: int = 6) -> SupervisedTrainer:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.3), nn.Flatten(), nn.Linear(144, 3))
    cfg = SupervisedConfig(steps, 6, 1e-2, 1e-4, "cosine", seed=1, checkpoint_every=3)
    hooks = [ClassicAugment(ClassicAugmentConfig(), seed=1)]  # draws from its own generator: checkpointed
    return SupervisedTrainer(model, Classification(), Data(), cfg, FP32, hooks, state_path=state_path)


def test_resumed_training_equals_uninterrupted(tmp_path):
    full = trainer(tmp_path / "full.pt")
    full.fit()

    class Interrupt(Exception):
        pass

    def stop(t):
        if t.step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        trainer(tmp_path / "cut.pt").fit(on_step=stop)
    resumed = trainer(tmp_path / "cut.pt")
    assert resumed.restore() and resumed.step == 3
    resumed.fit()
    for (k, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    assert not trainer(tmp_path / "none.pt").restore()


def test_batches_are_a_pure_function_of_seed_and_step():
    t = trainer(None)
    a, b = t.batch(4), t.batch(4)
    assert torch.equal(a[1], b[1])  # labels: the same draw (the augmentation hook moves on, by design)
    assert torch.equal(Data()(4, step_generator(1, 4))[1], a[1])
