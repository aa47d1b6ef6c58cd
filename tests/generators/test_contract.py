"""Registry contract for every generator and discriminator: registering a model is enough to have it tested.

Shapes, finite outputs, gradients to every parameter, save -> load -> identical output, determinism under a seed,
bf16 autocast + channels_last numerics, and (where the model has them) noise and condition that change the image.
"""

import pytest
import torch

from synthlabel.checkpoint import load_weights, read_model_config, save_model
from synthlabel.generators.common import one_hot
from synthlabel.registry import DISCRIMINATORS, GENERATORS

K, C, B, SIZE, IGNORE = 4, 3, 2, (32, 48), 255
G_KW = {"num_classes": K, "num_conditions": C, "width": 8, "image_size": list(SIZE)}  # as read back from JSON
D_KW = {"num_classes": K, "num_conditions": C, "width": 8}


def label_batch(seed: int = 0) -> torch.Tensor:
    """[B, H, W] ids: 4x4 blocks of classes 0..K-1 with some ignore pixels."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, K, (B, SIZE[0] // 4, SIZE[1] // 4), generator=g)
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    labels[:, :2, :5] = IGNORE
    return labels


def flat(output) -> list[torch.Tensor]:
    """All tensors of a network output (a tensor or nested lists of tensors)."""
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in flat(item)]


def same(tensors_a, tensors_b) -> bool:
    """Equal count and every pair bit-identical."""
    a, b = list(tensors_a), list(tensors_b)
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def weighted_sum(output) -> torch.Tensor:
    """A scalar touching every output element with a fixed random weight (no cancellation by symmetry)."""
    g = torch.Generator().manual_seed(123)
    return sum((t.float() * torch.randn(t.shape, generator=g)).sum() for t in flat(output))


def assert_all_params_get_grads(net: torch.nn.Module) -> None:
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name} got a zero/non-finite gradient"


def inputs(seed: int = 0):
    labels = label_batch(seed)
    z = torch.randn(B, 64, generator=torch.Generator().manual_seed(seed))
    return one_hot(labels, K, IGNORE), z, torch.tensor([0, 2])


def make_generator(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return GENERATORS.create(name, **G_KW)


def make_discriminator(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return DISCRIMINATORS.create(name, **D_KW)


def run_generator(net, onehot, z, condition):
    return net(onehot, z[:, : net.z_dim], condition)


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_shapes_range_and_backward(name):
    G = make_generator(name)
    onehot, z, cond = inputs()
    y = run_generator(G, onehot, z, cond)
    assert y.shape == (B, 3, *SIZE) and torch.isfinite(y).all()
    assert y.min() >= -1 and y.max() <= 1 and y.std() > 1e-3
    weighted_sum(y).backward()
    assert_all_params_get_grads(G)


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_save_load_gives_identical_output(name, tmp_path):
    G = make_generator(name)
    G.eval()
    onehot, z, cond = inputs()
    save_model(tmp_path / "g", name, G_KW, {"G": G})
    meta = read_model_config(tmp_path / "g")
    torch.manual_seed(99)  # a different init, so equality below comes from the loaded weights
    loaded = load_weights(tmp_path / "g", "G", GENERATORS.create(meta["name"], **meta["config"])).eval()
    with torch.no_grad():
        assert torch.equal(run_generator(loaded, onehot, z, cond), run_generator(G, onehot, z, cond))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_deterministic_under_seed(name):
    a, b, other = make_generator(name, 1), make_generator(name, 1), make_generator(name, 2)
    assert same(a.state_dict().values(), b.state_dict().values())
    assert not same(a.state_dict().values(), other.state_dict().values())
    onehot, z, cond = inputs()
    with torch.no_grad():
        assert torch.equal(run_generator(a.eval(), onehot, z, cond), run_generator(b.eval(), onehot, z, cond))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_uses_label_map_condition_and_noise(name):
    G = make_generator(name).eval()
    onehot, z, cond = inputs()
    with torch.no_grad():
        base = run_generator(G, onehot, z, cond)
        other_labels = run_generator(G, one_hot(label_batch(seed=5), K, IGNORE), z, cond)
        other_condition = run_generator(G, onehot, z, (cond + 1) % C)
        no_condition = run_generator(G, onehot, z, None)
    for changed in (other_labels, other_condition, no_condition):
        assert (changed - base).abs().mean() > 1e-3
    if G.z_dim == 0:
        pytest.skip(f"{name} has no noise input by default (z_dim=0)")
    with torch.no_grad():
        other_z = G(onehot, torch.randn(B, G.z_dim, generator=torch.Generator().manual_seed(7)), cond)
    assert (other_z - base).abs().mean() > 1e-3


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_bf16_channels_last_close_to_fp32(name):
    G = make_generator(name).eval()
    onehot, z, cond = inputs()
    with torch.no_grad():
        ref = run_generator(G, onehot, z, cond)
        G = G.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = run_generator(G, onehot.to(memory_format=torch.channels_last), z, cond)
    assert torch.isfinite(y).all() and (y.float() - ref).abs().mean() < 0.05


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_shapes_and_backward(name):
    D = make_discriminator(name)
    onehot, _, cond = inputs()
    image = torch.rand(B, 3, *SIZE) * 2 - 1
    out = D(image, onehot, cond)
    tensors = flat(out)
    assert tensors and all(t.shape[0] == B and torch.isfinite(t).all() for t in tensors)
    if D.kind == "segmentation":
        assert out.shape == (B, K + 1, *SIZE)
    else:
        assert D.kind == "patch" and all(scale[-1].shape[1] == 1 for scale in out)
    weighted_sum(out).backward()
    assert_all_params_get_grads(D)


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_save_load_gives_identical_output(name, tmp_path):
    D = make_discriminator(name)
    onehot, _, cond = inputs()
    image = torch.rand(B, 3, *SIZE) * 2 - 1
    D(image, onehot, cond)  # a train-mode pass moves spectral-norm vectors: they must be saved too
    D.eval()
    save_model(tmp_path / "d", name, D_KW, {"D": D})
    meta = read_model_config(tmp_path / "d")
    torch.manual_seed(99)
    loaded = load_weights(tmp_path / "d", "D", DISCRIMINATORS.create(meta["name"], **meta["config"])).eval()
    with torch.no_grad():
        assert same(flat(loaded(image, onehot, cond)), flat(D(image, onehot, cond)))


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_deterministic_under_seed(name):
    a, b = make_discriminator(name, 1), make_discriminator(name, 1)
    assert same(a.state_dict().values(), b.state_dict().values())
    onehot, _, cond = inputs()
    image = torch.rand(B, 3, *SIZE) * 2 - 1
    with torch.no_grad():
        assert same(flat(a(image, onehot, cond)), flat(b(image, onehot, cond)))
