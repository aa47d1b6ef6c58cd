"""Paired transforms keep image and label map aligned: the image encodes its label (one constant color per class),
so after any geometry every labeled pixel must still show its class's color."""

import pytest
import torch
import torch.nn.functional as F

from synthlabel.data.transforms import (
    GeometryParams,
    PairedAugment,
    apply_geometry,
    color_jitter,
    sample_geometry,
)

IGNORE = 255
COLORS = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [0.5, 0.5, -0.5], [0.0, -0.5, 1.0]])
VOID_COLOR = torch.tensor([0.25, 0.25, 0.25])


def _batch(batch: int = 6, size: tuple[int, int] = (24, 32), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels [B, H, W]: a grid of 4x4 blocks of random classes (some void); images [B, 3, H, W]: class colors."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    blocks = torch.randint(0, len(COLORS) + 1, (batch, (h + 3) // 4, (w + 3) // 4), generator=g)
    blocks[blocks == len(COLORS)] = IGNORE
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)[:, :h, :w].contiguous()
    return _paint(labels), labels


def _paint(labels: torch.Tensor) -> torch.Tensor:
    palette = torch.cat([COLORS, VOID_COLOR[None]])
    return palette[torch.where(labels == IGNORE, len(COLORS), labels)].permute(0, 3, 1, 2).contiguous()


def _colors_of(labels: torch.Tensor) -> torch.Tensor:
    """[B, H, W] -> [B, H, W, 3] expected colors (ignore pixels get the void color; callers mask them out)."""
    return _paint(labels).permute(0, 2, 3, 1)


def _interior_same_class(labels: torch.Tensor) -> torch.Tensor:
    """[B, H-2, W-2] True where the 3x3 neighborhood holds one non-ignore class: bilinear sampling there sees only
    that class's color (blocks are wider than the largest sampling step)."""
    lab = labels[:, None].float()
    hi, lo = F.max_pool2d(lab, 3, stride=1), -F.max_pool2d(-lab, 3, stride=1)
    return ((hi == lo) & (hi != IGNORE))[:, 0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_geometry_nearest_keeps_every_labeled_pixel_on_its_color(seed):
    images, labels = _batch(seed=seed)
    params = sample_geometry(len(images), True, (0.6, 1.8), torch.Generator().manual_seed(seed))
    out_img, out_lab = apply_geometry(images, labels, params, IGNORE, image_mode="nearest")
    assert out_img.shape == images.shape and out_lab.shape == labels.shape and out_lab.dtype == torch.int64
    valid = out_lab != IGNORE
    assert valid.float().mean() > 0.3
    torch.testing.assert_close(out_img.permute(0, 2, 3, 1)[valid], _colors_of(out_lab)[valid], rtol=0, atol=0)
    assert set(out_lab.unique().tolist()) <= set(labels.unique().tolist()) | {IGNORE}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_paired_augment_bilinear_interior_pixels_match_labels(seed):
    images, labels = _batch(seed=seed)
    augment = PairedAugment(flip=True, scale=(0.75, 1.5), jitter=0.0, ignore_index=IGNORE)
    out_img, out_lab = augment(images, labels, torch.Generator().manual_seed(seed))
    inner = _interior_same_class(out_lab)
    assert inner.float().mean() > 0.2  # the check below covers many pixels
    got = out_img.permute(0, 2, 3, 1)[:, 1:-1, 1:-1][inner]
    torch.testing.assert_close(got, _colors_of(out_lab)[:, 1:-1, 1:-1][inner], rtol=0, atol=1e-5)


def test_flip_flips_image_and_label_together():
    images, labels = _batch(batch=8)
    params = sample_geometry(8, True, (1.0, 1.0), torch.Generator().manual_seed(0))
    flipped = params.theta[:, 0, 0] < 0
    assert 0 < flipped.sum() < 8
    out_img, out_lab = apply_geometry(images, labels, params, IGNORE)
    torch.testing.assert_close(out_img[flipped], images[flipped].flip(-1), rtol=0, atol=1e-5)
    torch.testing.assert_close(out_img[~flipped], images[~flipped], rtol=0, atol=1e-5)
    assert torch.equal(out_lab[flipped], labels[flipped].flip(-1))
    assert torch.equal(out_lab[~flipped], labels[~flipped])
    no_flip = sample_geometry(8, False, (1.0, 1.0), torch.Generator().manual_seed(0))
    assert (no_flip.theta[:, 0, 0] > 0).all()


def test_zoom_out_marks_outside_pixels_ignore_not_class_zero():
    labels = torch.zeros(1, 16, 16, dtype=torch.long)  # all class 0: padding must not pass for class 0
    images = _paint(labels)
    half = GeometryParams(torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]]))  # output shows a 2x larger window
    _, out_lab = apply_geometry(images, labels, half, IGNORE)
    expected = torch.full((1, 16, 16), IGNORE)
    expected[:, 4:12, 4:12] = 0
    assert torch.equal(out_lab, expected)


def test_random_zoom_out_always_pads_with_ignore():
    images, labels = _batch(batch=8, size=(16, 16))
    params = sample_geometry(8, True, (0.5, 0.8), torch.Generator().manual_seed(5))
    _, out_lab = apply_geometry(images, labels, params, IGNORE)
    # zooming out shows the whole image inside a larger window: the rest of the window is ignore
    assert ((out_lab == IGNORE).sum(dim=(1, 2)) > (labels == IGNORE).sum(dim=(1, 2))).all()
    assert (out_lab != IGNORE).any(dim=2).any(dim=1).all()


def test_same_seed_same_output_and_other_seed_differs():
    images, labels = _batch()
    augment = PairedAugment(jitter=0.3)
    a = augment(images, labels, torch.Generator().manual_seed(7))
    b = augment(images, labels, torch.Generator().manual_seed(7))
    c = augment(images, labels, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    assert images.equal(_batch()[0]) and labels.equal(_batch()[1])  # inputs are not modified


def test_color_jitter_touches_only_images_and_stays_in_range():
    images, labels = _batch()
    plain = PairedAugment(jitter=0.0)(images, labels, torch.Generator().manual_seed(3))
    jittered = PairedAugment(jitter=0.9)(images, labels, torch.Generator().manual_seed(3))
    assert torch.equal(plain[1], jittered[1])  # same geometry, labels untouched by the jitter
    assert not torch.allclose(plain[0], jittered[0])
    out = color_jitter(images * 1.0, 0.9, torch.Generator().manual_seed(0))
    assert out.min() >= -1.0 and out.max() <= 1.0 and not torch.allclose(out, images)
    assert color_jitter(images, 0.0, torch.Generator()) is images
