"""The latent GAN (issue 14): `train-latent-gan` trains the stylegan generator on unlabeled images only (a
split's masks are never read), writes a loadable model whose renders are a function of the latent, tracks w_avg
for truncation, and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from synthlabel.checkpoint import load_state
from synthlabel.config import LatentGANConfig, build_config
from synthlabel.generators.io import load_generator
from synthlabel.generators.latent import train_latent_gan, unlabeled_images
from synthlabel.generators.sampling import render, seeded_noise


def config(data, steps=4, extra=()) -> LatentGANConfig:
    overrides = [
        f"data.path={data}", "data.size=[32, 48]", "model.z_dim=8", "model.w_dim=8", "model.width=4",
        "model.max_channels=16", "model.d_width=4", f"train.steps={steps}", "train.batch_size=4", "train.log_every=1",
        "train.sample_every=2", "train.checkpoint_every=2", "train.r1_interval=2",
    ]  # fmt: skip
    return build_config(LatentGANConfig, {}, overrides + list(extra))


def test_latent_gan_trains_renders_deterministically_and_resumes_exactly(demo_root, tmp_path):
    result = train_latent_gan(config(demo_root), tmp_path / "whole")
    G, meta = load_generator(result.model_dir)
    assert meta["kind"] == "latent_gan" and G.conditioning == ("noise",)
    z = seeded_noise(8, [1, 2, 3])
    first, again = render(G, z).images, render(G, z).images
    assert first.shape == (3, 3, 32, 48) and torch.equal(first, again)
    assert G.w_avg.abs().sum() > 0  # tracked during training, for truncation
    rows = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert {"G/loss", "D/loss", "D/r1"} <= set().union(*rows)
    assert sorted(p.name for p in result.samples_dir.iterdir()) == ["step_000002.png", "step_000004.png"]

    def stop_at_3(trainer):
        if trainer.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_latent_gan(config(demo_root), tmp_path / "cut", on_step=stop_at_3)
    train_latent_gan(config(demo_root), tmp_path / "cut", resume=True)
    whole, cut = load_state(tmp_path / "whole" / "train_state.pt"), load_state(tmp_path / "cut" / "train_state.pt")
    for key in ("G", "D", "G_ema"):
        for name, value in whole[key].items():
            assert torch.equal(value, cut[key][name]), (key, name)


def test_masks_are_never_read_and_a_folder_of_images_serves(demo_root, tmp_path):
    import shutil

    broken = tmp_path / "data"
    shutil.copytree(demo_root, broken)
    for mask in (broken / "trainannot").iterdir():
        mask.write_bytes(b"garbage")  # a latent GAN learns from images alone
    images = unlabeled_images(config(broken))
    assert torch.equal(images, unlabeled_images(config(demo_root))) and images.shape[1:] == (3, 32, 48)
    folder = tmp_path / "folder"
    shutil.copytree(demo_root / "train", folder)
    assert torch.equal(unlabeled_images(config(demo_root, extra=[f"images={folder}"])), images)
