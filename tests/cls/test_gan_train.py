"""Class GAN training with the shared adversarial trainer: balanced batches, snapshot pools, DiffAugment/ADA, EMA,
exact resume, metrics through the run's metrics.jsonl, finished runs reused, the model loaded by the one loader."""

from __future__ import annotations

import json

import pytest
import torch

from synthlabel.cls.config import ClassGANConfig
from synthlabel.cls.gan_train import class_trainer, load_pool, load_run, train_family
from synthlabel.generators.io import load_generator


def tiny(**kw) -> ClassGANConfig:
    base = {"width": 4, "z_dim": 8, "steps": 4, "batch_per_class": 2, "snapshots": 2, "precision": "fp32"}
    return ClassGANConfig(**{**base, **kw})


@pytest.mark.parametrize("family", ["dcgan", "cgan"])
def test_training_writes_snapshot_pools_and_model(blob_set, tmp_path, family):
    run = train_family(family, tiny(), blob_set, tmp_path / family, seed=0, pool_per_class=5)
    assert sorted(run.pools) == [2, 4] and run.final_step == 4
    pool = load_pool(run.pools[4])
    assert pool.counts() == [5, 5, 5] and pool.images.shape[1:] == blob_set.images.shape[1:]
    assert pool.class_names == blob_set.class_names and pool.images.dtype == torch.uint8
    G, meta = load_generator(tmp_path / family / "model")
    assert meta["name"] == family and meta["steps"] == 4 and meta["class_names"] == blob_set.class_names
    with torch.no_grad():
        assert G(torch.randn(3, 8), torch.tensor([0, 1, 2])).shape == (3, 1, 8, 8)
    assert not (tmp_path / family / "train_state.pt").exists()  # removed once finished
    rows = [json.loads(r) for r in (tmp_path / family / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and "D/loss" in rows[-1] and "G/loss" in rows[-1] and rows[-1]["seconds"] >= 0
    assert (tmp_path / family / "config.yaml").is_file() and not (tmp_path / family / "log.txt").exists()


def test_batches_hold_every_class(blob_set, tmp_path):
    trainer = class_trainer("dcgan", tiny(batch_per_class=3), blob_set, tmp_path, seed=0, pool_per_class=2)
    b = trainer.batch(7)
    assert torch.bincount(b.labels).tolist() == [3, 3, 3] and b.real.shape == (9, 1, 8, 8) and b.z.shape == (9, 8)
    assert torch.equal(b.real, trainer.batch(7).real)  # a pure function of (seed, step)


def test_adaptive_augmentation_moves_p(blob_set, tmp_path):
    # D cannot reach E[sign D(real)] > 0.99 in 3 steps, so ADA lowers p from 0.5 by 6 images / 100 per step
    cfg = tiny(augment=("translation", "cutout"), augment_p=0.5, adaptive=True, ada_images=100, ada_target=0.99)
    trainer = class_trainer("dcgan", cfg, blob_set, tmp_path, seed=0, pool_per_class=2)
    stats = [trainer.train_step(s) for s in range(3)]
    assert [round(s["ada_p"], 2) for s in stats] == [0.44, 0.38, 0.32]


def test_ema_generator_lags_the_trained_one(blob_set, tmp_path):
    trainer = class_trainer("cgan", tiny(ema_decay=0.9), blob_set, tmp_path, seed=0, pool_per_class=2)
    before = [p.clone() for p in trainer.G_ema.module.parameters()]
    trainer.train_step(0)
    trainer.train_step(1)
    live, ema = list(trainer.G.parameters()), list(trainer.G_ema.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(ema, before, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(ema, live, strict=True))


def test_resume_equals_uninterrupted(blob_set, tmp_path):
    cfg = tiny(steps=6, snapshots=3, augment=("translation",))
    whole = train_family("dcgan", cfg, blob_set, tmp_path / "whole", seed=3, pool_per_class=3)

    class Stop(Exception):
        pass

    part = class_trainer("dcgan", cfg, blob_set, tmp_path / "part", seed=3, pool_per_class=3)
    original = part.train_step

    def failing(step):
        if step == 3:
            raise Stop
        return original(step)

    part.train_step = failing
    with pytest.raises(Stop):
        part.fit()
    assert (tmp_path / "part" / "train_state.pt").is_file() and load_run(tmp_path / "part") is None
    resumed = train_family("dcgan", cfg, blob_set, tmp_path / "part", seed=3, pool_per_class=3)
    for step in (2, 4, 6):
        assert torch.equal(load_pool(resumed.pools[step]).images, load_pool(whole.pools[step]).images)
    again = train_family("dcgan", cfg, blob_set, tmp_path / "part", seed=3, pool_per_class=3)
    assert again.seconds == resumed.seconds  # loaded, not retrained
