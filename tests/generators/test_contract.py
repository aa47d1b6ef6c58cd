"""Registry contract for every generator and discriminator, of every kind: registering a model is enough to have it
tested. Inputs are built from what the network declares in `conditioning` (label map, condition, class, noise).

Shapes, range, finite outputs, gradients to every parameter, save -> load -> identical output (through the one
generator loader), determinism under a seed, bf16 autocast + channels_last numerics, and every declared input
changing the output.
"""

import pytest
import torch

from synthlabel.checkpoint import load_weights, save_model
from synthlabel.generators.common import INPUTS, forward_kwargs
from synthlabel.generators.io import load_generator, save_generator
from synthlabel.nn.labels import one_hot
from synthlabel.registry import DISCRIMINATORS, GENERATORS

K, C, SIZE, IGNORE = 4, 3, (32, 48), 255  # label map -> image: classes, conditions, size
CLASS_K, CLASS_SIZE = 3, (8, 8)  # class -> image: classes, size (one channel)


def is_class(name: str, registry=GENERATORS) -> bool:
    return "class" in registry.get(name).conditioning


def generator_kwargs(name: str) -> dict:
    """Constructor kwargs as read back from JSON, by what the generator is conditioned on."""
    if is_class(name):
        return {"num_classes": CLASS_K, "channels": 1, "image_size": list(CLASS_SIZE), "width": 4, "z_dim": 8}
    if GENERATORS.get(name).conditioning == ("noise",):  # unconditional latent GANs
        return {"z_dim": 8, "w_dim": 8, "width": 4, "max_channels": 16, "image_size": list(SIZE)}
    if "image" in GENERATORS.get(name).conditioning:  # translators: no labels, noise on
        return {"num_conditions": C, "width": 8, "image_size": list(SIZE), "z_dim": 4, "blocks": 2}
    return {"num_classes": K, "num_conditions": C, "width": 8, "image_size": list(SIZE)}


def discriminator_kwargs(name: str) -> dict:
    if is_class(name, DISCRIMINATORS):
        return {"num_classes": CLASS_K, "channels": 1, "image_size": list(CLASS_SIZE), "width": 4}
    if not DISCRIMINATORS.get(name).conditioning:  # unconditional
        return {"width": 4, "max_channels": 16, "image_size": list(SIZE)}
    if "label_map" not in DISCRIMINATORS.get(name).conditioning:  # image-only (translators' discriminators)
        return {"num_conditions": C, "width": 8}
    return {"num_classes": K, "num_conditions": C, "width": 8}


def label_batch(seed: int = 0, batch: int = 2) -> torch.Tensor:
    """[B, H, W] ids: 4x4 blocks of classes 0..K-1 with some ignore pixels."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, K, (batch, SIZE[0] // 4, SIZE[1] // 4), generator=g)
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    labels[:, :2, :5] = IGNORE
    return labels


def inputs(net: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """What `net` declares, keyed by conditioning name: 2 label-map samples, or 6 class samples (balanced, as in
    training, since batch norm sees them)."""
    batch = 6 if "class" in net.conditioning else 2
    made = {
        "label_map": lambda: one_hot(label_batch(seed, batch), K, IGNORE),
        "condition": lambda: torch.tensor([0, 2]),
        "class": lambda: torch.arange(batch) % CLASS_K,
        "noise": lambda: torch.randn(batch, net.z_dim, generator=torch.Generator().manual_seed(seed)),
        "image": lambda: torch.rand(batch, 3, *SIZE, generator=torch.Generator().manual_seed(seed + 11)) * 2 - 1,
    }
    return {what: made[what]() for what in net.conditioning}


def image_for(net: torch.nn.Module, given: dict) -> torch.Tensor:
    """A real-looking image batch for a discriminator."""
    batch = len(next(iter(given.values()))) if given else 2
    channels, size = (1, CLASS_SIZE) if "class" in net.conditioning else (3, SIZE)
    return torch.rand(batch, channels, *size, generator=torch.Generator().manual_seed(3)) * 2 - 1


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


def make_generator(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return GENERATORS.create(name, **generator_kwargs(name))


def make_discriminator(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return DISCRIMINATORS.create(name, **discriminator_kwargs(name))


def run(net, given: dict, image: torch.Tensor | None = None):
    kwargs = forward_kwargs(net, given)
    return net(**kwargs) if image is None else net(image, **kwargs)


@pytest.mark.parametrize("registry", [GENERATORS, DISCRIMINATORS], ids=["generators", "discriminators"])
def test_every_network_declares_its_interface(registry):
    for name in registry.names():
        net = registry.get(name)
        assert set(net.conditioning) <= set(INPUTS), name
        assert net.conditioning or registry is DISCRIMINATORS, name  # a generator takes something
    for name in GENERATORS.names():
        G = make_generator(name)
        assert G.z_dim >= 0 and len(G.image_size) == 2 and G.channels in (1, 3), name
        assert G.num_classes > 0 or "label_map" not in G.conditioning, name  # translators, latent GANs: none


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_shapes_range_and_backward(name):
    G = make_generator(name)
    given = inputs(G)
    y = run(G, given)
    assert y.shape == (len(next(iter(given.values()))), G.channels, *G.image_size) and torch.isfinite(y).all()
    assert y.min() >= -1 and y.max() <= 1 and y.std() > 1e-3
    weighted_sum(y).backward()
    assert_all_params_get_grads(G)


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_save_load_gives_identical_output(name, tmp_path):
    G = make_generator(name)
    given = inputs(G)
    run(G, given)  # a train-mode pass moves batch-norm statistics: they must be saved too
    G.eval()
    save_generator(tmp_path / "g", name, generator_kwargs(name), G)
    torch.manual_seed(99)  # a different init, so equality below comes from the loaded weights
    loaded, meta = load_generator(tmp_path / "g")
    assert meta["name"] == name and not loaded.training
    with torch.no_grad():
        assert torch.equal(run(loaded, given), run(G, given))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_deterministic_under_seed(name):
    a, b, other = make_generator(name, 1), make_generator(name, 1), make_generator(name, 2)
    assert same(a.state_dict().values(), b.state_dict().values())
    assert not same(a.state_dict().values(), other.state_dict().values())
    given = inputs(a)
    with torch.no_grad():
        assert torch.equal(run(a.eval(), given), run(b.eval(), given))


def changed(what: str, given: dict) -> list[dict]:
    """Variants of `given` that differ in input `what` only."""
    if what == "label_map":
        return [{**given, what: one_hot(label_batch(5, len(given[what])), K, IGNORE)}]
    if what == "condition":
        return [{**given, what: (given[what] + 1) % C}, {**given, what: None}]
    if what == "class":
        return [{**given, what: (given[what] + 1) % CLASS_K}]
    if what == "image":
        return [{**given, what: given[what].flip(-1)}]
    return [{**given, what: torch.randn(given[what].shape, generator=torch.Generator().manual_seed(7))}]


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_uses_every_declared_input(name):
    G = make_generator(name).eval()
    given = inputs(G)
    with torch.no_grad():
        base = run(G, given)
        for what in G.conditioning:
            if what == "noise" and G.z_dim == 0:
                continue  # pix2pix has no noise input by default (z_dim=0)
            for variant in changed(what, given):
                assert (run(G, variant) - base).abs().mean() > 1e-3, what


@pytest.mark.parametrize("name", GENERATORS.names())
def test_generator_bf16_channels_last_close_to_fp32(name):
    G = make_generator(name).eval()
    given = inputs(G)
    with torch.no_grad():
        ref = run(G, given)
        G = G.to(memory_format=torch.channels_last)
        for key in ("label_map", "image"):
            if key in given:
                given[key] = given[key].contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = run(G, given)
    assert torch.isfinite(y).all() and (y.float() - ref).abs().mean() < 0.05


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_shapes_and_backward(name):
    D = make_discriminator(name)
    given = inputs(D)
    image = image_for(D, given)
    out = run(D, given, image)
    tensors = flat(out)
    assert tensors and all(t.shape[0] == len(image) and torch.isfinite(t).all() for t in tensors)
    if D.kind == "segmentation":
        assert out.shape == (len(image), K + 1, *SIZE)
    elif D.kind == "logit":
        assert out.shape == (len(image),)
    else:
        assert D.kind == "patch" and all(scale[-1].shape[1] == 1 for scale in out)
    weighted_sum(out).backward()
    assert_all_params_get_grads(D)


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_save_load_and_condition(name, tmp_path):
    D = make_discriminator(name)
    given = inputs(D)
    image = image_for(D, given)
    run(D, given, image)  # a train-mode pass moves spectral-norm vectors and batch-norm statistics: saved too
    D.eval()
    save_model(tmp_path / "d", name, discriminator_kwargs(name), {"D": D})
    loaded = load_weights(tmp_path / "d", "D", make_discriminator(name, seed=9)).eval()
    with torch.no_grad():
        assert same(flat(run(loaded, given, image)), flat(run(D, given, image)))
        for what in set(D.conditioning) & {"condition", "class"}:  # OASIS's label map is its target, not input
            variant = changed(what, given)[0]
            assert not same(flat(run(D, variant, image)), flat(run(D, given, image))), what


@pytest.mark.parametrize("name", DISCRIMINATORS.names())
def test_discriminator_deterministic_under_seed(name):
    a, b = make_discriminator(name, 1), make_discriminator(name, 1)
    assert same(a.state_dict().values(), b.state_dict().values())
    given = inputs(a)
    image = image_for(a, given)
    with torch.no_grad():
        assert same(flat(run(a, given, image)), flat(run(b, given, image)))
