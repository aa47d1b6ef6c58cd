"""The generator stage: `train_generator` writes a rebuildable model, sample grids and metrics; data and config
errors leave nothing behind; `render` (the one sampling function) is deterministic per seed for every kind."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.checkpoint import read_model_config
from synthlabel.config import GenConfig, build_config
from synthlabel.data.toy import DEMO_CONDITIONS, demo_spec, make_demo_dataset
from synthlabel.downstream.workflow import load_training_data
from synthlabel.errors import ConfigError, DataError
from synthlabel.generators import conditioned_on
from synthlabel.generators.io import generator_spec, load_generator
from synthlabel.generators.sampling import render, seeded_noise
from synthlabel.generators.workflow import train_generator
from synthlabel.registry import GENERATORS

SIZE = (32, 48)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "data"
    return make_demo_dataset(root, n_train=6, n_val=1, n_test=1, size=SIZE, seed=0, paired=False)


def tiny(data_path, steps: int = 4, extra=()) -> GenConfig:
    overrides = [
        f"data.path={data_path}",
        "data.size=[32, 48]",
        "model.width=8",
        "model.discriminator.width=8",
        f"train.steps={steps}",
        "train.batch_size=2",
        "train.log_every=1",
        "train.sample_every=2",
        "train.checkpoint_every=2",
        "train.sample_rows=2",
        "train.sample_columns=2",
    ]
    return build_config(GenConfig, {}, overrides + list(extra))


def test_train_generator_writes_model_samples_and_metrics(demo, tmp_path):
    cfg = tiny(demo, extra=["data.subset.n=4"])
    result = train_generator(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "env.json", "log.txt", "train_state.pt", "model/config.json", "model/G.safetensors"):
        assert (run / name).is_file(), name
    assert len((run / "subset.txt").read_text().split()) == 4
    assert result.steps == 4 and sorted(p.name for p in result.samples_dir.iterdir()) == [
        "step_000002.png",
        "step_000004.png",
    ]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert all(np.isfinite(r[k]) for k in ("G/loss", "D/loss", "G/adv", "G/fm", "ada_p")) and r["sec_per_step"] > 0

    meta = read_model_config(result.model_dir)
    assert meta["name"] == "spade" and meta["conditions"] == list(DEMO_CONDITIONS) and meta["size"] == list(SIZE)
    generator, _ = load_generator(result.model_dir)
    state = torch.load(run / "train_state.pt", weights_only=True)  # the whole state, no pickle needed
    ema = {k.removeprefix("module."): v for k, v in state["G_ema"].items() if k.startswith("module.")}
    assert all(torch.equal(v, ema[k]) for k, v in generator.state_dict().items())  # model/ holds G_ema
    spec = generator_spec(meta)
    assert spec.names == demo_spec().names

    # the grid: rows = examples, columns = label | real | 2 generated
    train, _, _ = load_training_data(cfg.data.model_copy(update={"val_split": None}))
    grid = np.asarray(Image.open(result.samples_dir / "step_000004.png"))
    h, w = SIZE
    assert grid.shape == (2 * (h + 2) - 2, 4 * (w + 2) - 2, 3)
    assert np.array_equal(grid[:h, :w], spec.colorize(train.labels[0].numpy()))
    assert np.array_equal(grid[:h, w + 2 : 2 * w + 2], train.images[0].permute(1, 2, 0).numpy())
    labels = train.labels[:1]
    condition = torch.tensor([DEMO_CONDITIONS.index(train.meta[0]["condition"])])
    z = seeded_noise(generator.z_dim, [cfg.train.seed * 7919])
    fake = render(generator, z, labels, condition, ignore_index=spec.ignore_index).images
    expected = fake.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.abs(grid[:h, 2 * (w + 2) : 3 * w + 4].astype(int) - expected).max() <= 1


def test_keep_models_saves_a_loadable_model_at_every_sample_step(demo, tmp_path):
    result = train_generator(tiny(demo, extra=["train.keep_models=true"]), tmp_path / "run")
    kept = sorted(p.name for p in (tmp_path / "run" / "models").iterdir())
    assert kept == ["step_000002", "step_000004"]
    last, _ = load_generator(tmp_path / "run" / "models" / "step_000004")
    final, _ = load_generator(result.model_dir)
    assert all(torch.equal(v, final.state_dict()[k]) for k, v in last.state_dict().items())  # the last is model/
    assert read_model_config(tmp_path / "run" / "models" / "step_000002")["steps"] == 2


def test_data_and_config_errors_leave_no_run_dir(demo, tmp_path):
    with pytest.raises(DataError, match=r"\.png: condition '(day|dusk|night|fog)' is not one the generator knows"):
        train_generator(tiny(demo, extra=["conditions=[sunny]"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="divisible by 16"):
        train_generator(tiny(demo, extra=["data.size=[40, 48]"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="num_scales"):
        train_generator(tiny(demo, extra=["model.discriminator.options.num_scales=3"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="unknown generator"):
        train_generator(tiny(demo, extra=["model.name=nope"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="model.name 'dcgan' is not conditioned on label maps"):
        train_generator(tiny(demo, extra=["model.name=dcgan"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="model.discriminator.name 'cgan' is not conditioned on label maps"):
        train_generator(tiny(demo, extra=["model.discriminator.name=cgan"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def render_seeded(generator, labels, spec, condition, seeds):
    z = seeded_noise(generator.z_dim, seeds)
    out = render(generator, z, labels, condition, ignore_index=spec.ignore_index)
    assert torch.equal(out.label_maps, labels)  # a label-map generator's samples keep their input maps
    return out.images


@pytest.mark.parametrize("name", conditioned_on(GENERATORS, "label_map"))
def test_render_is_deterministic_per_seed(name):
    spec = demo_spec()
    torch.manual_seed(0)
    kwargs = {"z_dim": 16} if name == "pix2pix" else {}  # pix2pix has no noise input by default
    generator = GENERATORS.create(
        name, num_classes=spec.num_classes, num_conditions=4, width=8, image_size=SIZE, **kwargs
    ).train()
    blocks = torch.randint(0, spec.num_classes, (2, 8, 12), generator=torch.Generator().manual_seed(1))
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    rng = torch.get_rng_state()
    a = render_seeded(generator, labels[[0, 0, 0]], spec, torch.tensor([1, 1, 1]), [5, 5, 6])
    assert torch.equal(rng, torch.get_rng_state()) and generator.training  # no global RNG use, mode restored
    assert a.shape == (3, 3, *SIZE) and a.abs().max() <= 1
    assert torch.equal(a[0], a[1]) and not torch.allclose(a[0], a[2], atol=1e-3)
    assert torch.equal(a, render_seeded(generator, labels[[0, 0, 0]], spec, torch.tensor([1, 1, 1]), [5, 5, 6]))
    alone = render_seeded(generator, labels[[0]], spec, torch.tensor([1]), [6])  # independent of the batch
    assert torch.allclose(alone[0], a[2], atol=1e-5)
    mixed = render_seeded(generator, labels, spec, torch.tensor([2, -1]), [3, 4])  # -1 = unknown condition
    assert torch.allclose(mixed[0], render_seeded(generator, labels[:1], spec, torch.tensor([2]), [3])[0], atol=1e-5)
    assert torch.allclose(mixed[1], render_seeded(generator, labels[1:], spec, None, [4])[0], atol=1e-5)
    with pytest.raises(ValueError, match="one z per sample"):
        render(generator, seeded_noise(generator.z_dim, [1]), labels)


@pytest.mark.parametrize("name", conditioned_on(GENERATORS, "class"))
def test_render_class_generators_in_any_chunks(name):
    torch.manual_seed(0)
    G = GENERATORS.create(name, num_classes=3, channels=1, image_size=(8, 8), width=4, z_dim=8).train()
    z, labels = seeded_noise(8, range(7)), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    whole = render(G, z, labels=labels)
    assert whole.images.shape == (7, 1, 8, 8) and whole.label_maps is None and G.training
    assert torch.allclose(render(G, z, labels=labels, batch_size=2).images, whole.images, atol=1e-6)
    with pytest.raises(ValueError, match="missing"):
        render(G, z)  # a class generator needs its classes


class MapMaker(torch.nn.Module):
    """A generator that makes its own label maps (conditioned on noise only): image and map from the sign of z."""

    conditioning, z_dim, image_size, channels, num_classes = ("noise",), 2, (4, 4), 3, 2

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor):
        ids = (z[:, :1, None] > 0).long().expand(-1, 4, 4)  # [B, H, W]
        return (ids[:, None].float() * self.scale).expand(-1, 3, -1, -1), ids


def test_render_returns_the_label_maps_a_generator_makes():
    z = seeded_noise(2, range(5))
    out = render(MapMaker(), z, batch_size=2)
    assert out.images.shape == (5, 3, 4, 4) and out.label_maps.shape == (5, 4, 4)
    assert torch.equal(out.label_maps[:, 0, 0], (z[:, 0] > 0).long())
    assert torch.equal(out.images[:, 0].long(), out.label_maps)
