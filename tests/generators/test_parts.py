"""Parts of the generator families: one-hot, SPADE norm and block, pix2pix noise, PatchGAN and OASIS specifics,
dcgan's independent per-class networks, class labels checked by the class -> image families."""

import pytest
import torch
from torch import nn

from synthlabel.errors import DataError
from synthlabel.generators import conditioned_on
from synthlabel.generators.dcgan import PerClassGenerator
from synthlabel.generators.discriminators import MultiScalePatchGAN, OASISDiscriminator
from synthlabel.generators.pix2pix import Pix2PixGenerator
from synthlabel.generators.spade import SPADEGenerator
from synthlabel.nn.labels import one_hot
from synthlabel.nn.spade import SPADE, SPADEResBlock, resize_segmap
from synthlabel.registry import GENERATORS


def test_one_hot_zeroes_ignore_pixels_and_rejects_unknown_ids():
    labels = torch.tensor([[[0, 2], [255, 1]]])
    out = one_hot(labels, 3, 255)
    assert out.shape == (1, 3, 2, 2) and out.dtype == torch.float32
    assert out[0, :, 0, 0].tolist() == [1, 0, 0] and out[0, :, 0, 1].tolist() == [0, 0, 1]
    assert out[0, :, 1, 0].tolist() == [0, 0, 0]  # ignore -> all-zero column
    with pytest.raises(DataError, match=r"\[7\]"):
        one_hot(torch.tensor([[[0, 7]]]), 3, 255)


def test_spade_norm_is_spatially_adaptive():
    """Changing the label map on the right edge changes the output there and nowhere far from it."""
    torch.manual_seed(0)
    norm = SPADE(4, label_channels=2, hidden=8)
    x = torch.randn(1, 4, 16, 16)
    seg = torch.zeros(1, 2, 16, 16)
    seg[:, 0] = 1
    seg_b = seg.clone()
    seg_b[:, :, :, 12:] = torch.tensor([0.0, 1.0])[:, None, None]
    diff = (norm(x, seg) - norm(x, seg_b)).abs().amax(dim=(0, 1, 2))  # per column
    assert diff[:10].max() == 0  # two 3x3 convs see 2 columns away
    assert diff[12:].min() > 1e-4


def test_spade_norm_kinds_and_code():
    assert isinstance(SPADE(4, 2, norm="batch").norm, nn.BatchNorm2d)
    assert not SPADE(4, 2, norm="batch").norm.affine and not SPADE(4, 2).norm.affine
    with pytest.raises(ValueError, match="norm"):
        SPADE(4, 2, norm="layer")
    torch.manual_seed(0)
    norm = SPADE(4, 2, hidden=8, code_dim=3)
    x, seg = torch.randn(2, 4, 8, 8), torch.rand(2, 2, 8, 8)
    assert not torch.allclose(norm(x, seg, torch.eye(3)[:2]), norm(x, seg, torch.eye(3)[1:]))
    with pytest.raises(ValueError, match="code"):
        norm(x, seg)


def test_resize_segmap_keeps_a_one_pixel_class_at_coarse_levels():
    seg = torch.zeros(1, 2, 32, 48)
    seg[:, 0] = 1
    seg[:, :, 5, 7] = torch.tensor([0.0, 1.0])
    small = resize_segmap(seg, (2, 3))
    assert small[0, 1].sum() > 0 and torch.allclose(small.sum(1), torch.ones(1, 2, 3))


def test_spade_resblock_learns_shortcut_only_when_channels_change():
    same, wider = SPADEResBlock(8, 8, label_channels=3, hidden=8), SPADEResBlock(8, 4, label_channels=3, hidden=8)
    assert not same.learned_shortcut and not hasattr(same, "conv_s")
    assert wider.learned_shortcut and wider.conv_s.weight.shape == (4, 8, 1, 1)
    assert wider(torch.randn(2, 8, 8, 8), torch.rand(2, 3, 8, 8)).shape == (2, 4, 8, 8)


def test_spade_generator_seed_and_size_errors():
    G = SPADEGenerator(3, 2, z_dim=4, width=8, num_up=3, image_size=(32, 48))
    assert G.seed_size == (4, 6)
    with pytest.raises(ValueError, match=r"\(32, 48\)"):
        G(torch.zeros(1, 3, 16, 48))
    with pytest.raises(ValueError, match="one-hot"):
        G(torch.zeros(1, 5, 32, 48))
    with pytest.raises(ValueError, match="divisible"):
        SPADEGenerator(3, image_size=(30, 48))
    with pytest.raises(DataError, match="condition"):
        G(torch.zeros(1, 3, 32, 48), condition=torch.tensor([2]))


def test_spade_z_reaches_the_image_without_noise_in_spade():
    torch.manual_seed(0)
    G = SPADEGenerator(3, 0, z_dim=4, width=8, num_up=3, image_size=(32, 48), noise_in_spade=False).eval()
    seg = one_hot(torch.randint(0, 3, (2, 32, 48)), 3, 255)
    with torch.no_grad():
        assert (G(seg, torch.randn(2, 4)) - G(seg, torch.randn(2, 4))).abs().mean() > 1e-3


def test_pix2pix_noise_planes_and_dropout():
    torch.manual_seed(0)
    seg = one_hot(torch.randint(0, 3, (2, 32, 48)), 3, 255)
    G = Pix2PixGenerator(3, 0, width=8, depth=3, z_dim=4, image_size=(32, 48))
    with torch.no_grad():
        a, b = G(seg, torch.randn(2, 4)), G(seg, torch.zeros(2, 4))  # train mode: dropout is noise too
        G.eval()
        z = torch.randn(2, 4)
        assert torch.equal(G(seg, z), G(seg, z))  # no dropout at eval
        assert (G(seg, z) - G(seg, -z)).abs().mean() > 1e-3
    assert (a - b).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="divisible"):
        G(one_hot(torch.zeros(1, 30, 48, dtype=torch.long), 3, 255))


def test_patchgan_returns_features_then_logits_per_scale():
    D = MultiScalePatchGAN(3, 2, width=8, num_scales=3, n_layers=2, spectral_norm=True)
    out = D(torch.randn(2, 3, 32, 48), one_hot(torch.randint(0, 3, (2, 32, 48)), 3, 255), torch.tensor([0, 1]))
    assert len(out) == 3 and all(len(scale) == 4 for scale in out)  # 3 feature maps + logits
    assert [scale[-1].shape[1] for scale in out] == [1, 1, 1]
    assert out[0][-1].shape[-1] > out[1][-1].shape[-1] > out[2][-1].shape[-1]
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(nn.utils.parametrize.is_parametrized(m) for m in convs)
    plain = MultiScalePatchGAN(3, width=8, spectral_norm=False)
    assert not any(nn.utils.parametrize.is_parametrized(m) for m in plain.modules())


def test_oasis_sees_the_image_and_condition_not_the_label_map():
    torch.manual_seed(0)
    D = OASISDiscriminator(3, 2, width=8, depth=3).eval()
    image = torch.randn(2, 3, 24, 40)  # not a power of two: skips are resized
    seg_a, seg_b = (one_hot(torch.randint(0, 3, (2, 24, 40)), 3, 255) for _ in range(2))
    with torch.no_grad():
        out = D(image, seg_a, torch.tensor([0, 1]))
        assert out.shape == (2, 4, 24, 40)
        assert torch.equal(out, D(image, seg_b, torch.tensor([0, 1])))
        assert not torch.allclose(out, D(image, seg_a, torch.tensor([1, 0])))


def test_per_class_generators_are_independent():
    """dcgan's class k output depends on class k's weights only (channel groups never mix)."""
    torch.manual_seed(0)
    G = PerClassGenerator(3, 1, (8, 8), width=4, z_dim=8)
    labels = torch.arange(3).repeat(2)
    out = G(torch.randn(6, 8), labels)
    out[labels == 1].sum().backward()
    k_channels = G.project.weight.shape[0] // 3
    grads = G.project.weight.grad
    assert grads[k_channels : 2 * k_channels].abs().sum() > 0
    assert grads[:k_channels].abs().sum() == 0 and grads[2 * k_channels :].abs().sum() == 0


@pytest.mark.parametrize("name", conditioned_on(GENERATORS, "class"))
def test_class_generators_take_unbalanced_labels_and_reject_bad_ones(name):
    torch.manual_seed(0)
    G = GENERATORS.create(name, num_classes=3, channels=1, image_size=(8, 8), width=4, z_dim=8).eval()
    z = torch.randn(4, 8)
    with torch.no_grad():
        alone = G(z[:1], torch.tensor([2]))
        mixed = G(z, torch.tensor([2, 2, 0, 2]))
    assert mixed.shape == (4, 1, 8, 8) and torch.allclose(mixed[0], alone[0], atol=1e-6)  # eval: per-sample
    with pytest.raises(ValueError, match="labels must be in"):
        G(z, torch.tensor([0, 1, 2, 3]))
