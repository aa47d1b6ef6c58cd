"""DiffAugment/ADA: label maps move with images, parameters replay on real and fake, p adapts and is saved.

Images encode their labels (each class one constant color), so alignment is checked pixel by pixel."""

from dataclasses import replace

import pytest
import torch

from synthlabel.nn.labels import one_hot
from synthlabel.train.augment import DiffAugment

K, IGNORE, SIZE = 4, 255, (32, 48)
PALETTE = torch.tensor([[0.9, -0.5, 0.1], [-0.8, 0.7, 0.3], [0.2, 0.4, -0.9], [-0.3, -0.6, 0.8]])  # never 0
OTHER_PALETTE = -PALETTE


def labels(batch: int = 4) -> torch.Tensor:
    """[B, H, W] ids in 4x4 blocks (no ignore pixels, so every ignore after augmenting came from outside)."""
    g = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, K, (batch, SIZE[0] // 4, SIZE[1] // 4), generator=g)
    return blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)


def paint(label_map: torch.Tensor, palette: torch.Tensor = PALETTE) -> torch.Tensor:
    return palette[label_map].permute(0, 3, 1, 2).contiguous()  # [B, 3, H, W]


def decode(image: torch.Tensor, palette: torch.Tensor = PALETTE) -> torch.Tensor:
    """Nearest palette color per pixel -> ids; black (0) pixels -> IGNORE."""
    dist = (image[:, None] - palette[None, :, :, None, None]).abs().sum(2)  # [B, K, H, W]
    ids = dist.argmin(1)
    return torch.where(image.abs().sum(1) == 0, torch.full_like(ids, IGNORE), ids)


def sampled(aug: DiffAugment, batch: int = 4, seed: int = 1):
    return aug.sample(batch, SIZE, generator=torch.Generator().manual_seed(seed))


def test_translation_moves_labels_with_the_image():
    aug = DiffAugment(policy=("translation",), ignore_index=IGNORE)
    ids = labels()
    params = sampled(aug)
    assert (params.translation != 0).any()
    image, out_ids, out_onehot = aug(paint(ids), ids, one_hot(ids, K, IGNORE), params=params)
    assert not torch.equal(out_ids, ids) and (out_ids == IGNORE).any()
    assert torch.equal(decode(image), out_ids)  # pixel-exact alignment; shifted-in pixels: image 0, label ignore
    assert torch.equal(out_onehot, one_hot(out_ids, K, IGNORE))  # one-hot: shifted-in pixels are all-zero


def test_cutout_changes_the_image_only():
    ids = labels()
    both = DiffAugment(policy=("translation", "cutout"))
    params = sampled(both)
    assert (params.cutout[:, 2] > 0).all()
    image, out_ids = both(paint(ids), ids, params=params)
    no_cutout = replace(params, cutout=params.cutout * torch.tensor([1, 1, 0, 0]))
    _, translated_ids = both(paint(ids), ids, params=no_cutout)
    assert torch.equal(out_ids, translated_ids)  # labels untouched by cutout (DiffAugment's choice)
    hole = (image.abs().sum(1) == 0) & (out_ids != IGNORE)
    assert hole.float().mean() > 0.1  # a rectangle of about a quarter of the image is blanked...
    assert torch.equal(decode(image)[~hole], out_ids[~hole])  # ...and everything else stays aligned


def test_color_changes_images_only():
    aug = DiffAugment(policy=("color",))
    ids = labels()
    image, out_ids, out_onehot = aug(paint(ids), ids, one_hot(ids, K, IGNORE), params=sampled(aug))
    assert torch.equal(out_ids, ids) and torch.equal(out_onehot, one_hot(ids, K, IGNORE))
    assert (image - paint(ids)).abs().mean() > 0.05


def test_same_params_replay_identically_on_real_and_fake():
    aug = DiffAugment()
    ids = labels()
    params = sampled(aug)
    real, _ = aug(paint(ids), ids, params=params)
    real_again, _ = aug(paint(ids), ids, params=params)
    assert torch.equal(real, real_again)
    geometry = DiffAugment(policy=("translation", "cutout"))  # no color, so images decode back to labels
    params = sampled(geometry)
    real, out_ids = geometry(paint(ids), ids, params=params)
    fake, _ = geometry(paint(ids, OTHER_PALETTE), ids, params=params)  # same labels, other rendering
    assert torch.equal(decode(fake, OTHER_PALETTE), decode(real))  # same shift and same hole in both
    other, _ = geometry(paint(ids), ids, params=sampled(geometry, seed=2))
    assert not torch.equal(other, real)


def test_p_zero_is_identity_and_p_gates_per_sample():
    ids = labels()
    image, out_ids = DiffAugment(p=0.0)(paint(ids), ids)
    assert torch.equal(image, paint(ids)) and torch.equal(out_ids, ids)
    params = DiffAugment(p=0.5).sample(2000, SIZE, generator=torch.Generator().manual_seed(0))
    assert 0.4 < (params.brightness != 0).float().mean() < 0.6
    assert 0.4 < (params.cutout[:, 2] > 0).float().mean() < 0.6


def test_augmentation_is_differentiable_for_images():
    aug = DiffAugment()
    x = paint(labels()).requires_grad_(True)
    image, _ = aug(x, labels(), params=sampled(aug))
    image.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ada_p_rises_when_d_overfits_falls_otherwise_and_is_saved():
    aug = DiffAugment(adaptive=True, ada_images=10_000)
    assert float(aug.p) == 0.0 and "p" in aug.state_dict()
    assert aug.update(0.9, num_images=1000) == pytest.approx(0.1)  # sign mean above 0.6: D overfits
    assert aug.update(0.8, num_images=1000) == pytest.approx(0.2)
    assert aug.update(0.3, num_images=1000) == pytest.approx(0.1)  # below target: less augmentation
    assert aug.update(0.0, num_images=50_000) == 0.0  # clamped
    assert aug.update(1.0, num_images=50_000) == 1.0
    aug.update(0.0, num_images=3000)
    restored = DiffAugment(adaptive=True)
    restored.load_state_dict(aug.state_dict())
    assert float(restored.p) == pytest.approx(0.7)
    fixed = DiffAugment(p=0.3)
    assert fixed.update(1.0, num_images=10**6) == pytest.approx(0.3)  # not adaptive: p stays


def test_unknown_op_is_an_error():
    with pytest.raises(ValueError, match="rotate"):
        DiffAugment(policy=("rotate",))
