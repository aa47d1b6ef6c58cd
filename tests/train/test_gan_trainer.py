"""The adversarial trainer on label map -> image GANs: batches as a pure function of (seed, step) with paired flips,
every registered label-map generator x discriminator trains, ADA's p adapts and is checkpointed, exact resume,
condition resolution and its errors."""

import json

import pytest
import torch
import torch.nn.functional as F

from synthlabel.config import GenConfig, build_config, to_dict
from synthlabel.data.classes import ClassInfo, ClassSpec
from synthlabel.data.sample import TensorSet, to_uint8
from synthlabel.errors import DataError
from synthlabel.generators import conditioned_on
from synthlabel.generators.workflow import condition_indices, label_trainer, resolve_conditions, train_generator
from synthlabel.registry import DISCRIMINATORS, GENERATORS
from synthlabel.runs import Run
from synthlabel.train.gan_trainer import GANTrainer

K, SIZE = 3, (32, 48)
SPEC = ClassSpec(tuple(ClassInfo(i, f"c{i}", (60 * i, 0, 0)) for i in range(K)))
TINY = [
    "model.width=8",
    "model.discriminator.width=8",
    "train.batch_size=2",
    "train.log_every=1",
    "train.sample_every=2",
    "train.checkpoint_every=2",
    "train.sample_rows=2",
    "train.sample_columns=2",
]


def tiny_set(n: int = 4, conditions: tuple[str, ...] = ()) -> TensorSet:
    """Label maps of 4x4 blocks; every image channel is 60 * label + 30, so image and labels can be compared."""
    blocks = torch.randint(0, K, (n, SIZE[0] // 4, SIZE[1] // 4), generator=torch.Generator().manual_seed(0))
    labels = blocks.repeat_interleave(4, 1).repeat_interleave(4, 2)
    images = (labels * 60 + 30).to(torch.uint8)[:, None].repeat(1, 3, 1, 1)
    meta = [{"file": f"img{i}.png"} for i in range(n)]
    for i, m in enumerate(meta):
        if conditions:
            m["condition"] = conditions[i % len(conditions)]
    return TensorSet(images, labels, meta)


def make_trainer(path, overrides=(), data=None, conditions=(), resume=False) -> GANTrainer:
    cfg = build_config(GenConfig, {}, TINY + list(overrides))
    run = Run(path, to_dict(cfg), resume=resume)
    return label_trainer(cfg, data if data is not None else tiny_set(), SPEC, conditions, path, run)


def test_batch_is_pure_function_of_seed_and_step_with_paired_flips(tmp_path):
    trainer = make_trainer(tmp_path / "a")
    rng = torch.get_rng_state()
    a, b = trainer.batch(3), trainer.batch(3)
    assert torch.equal(rng, torch.get_rng_state())  # batches never touch the global RNG
    for x, y in zip((a.indices, a.real, a.label_map, a.z), (b.indices, b.real, b.label_map, b.z), strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.z, trainer.batch(4).z)
    other_seed = make_trainer(tmp_path / "b", ["train.seed=1"])
    assert not torch.equal(a.z, other_seed.batch(3).z)
    data = trainer.task.train_set
    flipped = unflipped = 0
    for step in range(12):
        batch = trainer.batch(step)
        # image and label map keep the same geometry whether flipped or not
        assert torch.equal(to_uint8(batch.real)[:, 0], (batch.label_map * 60 + 30).to(torch.uint8))
        for i, label in zip(batch.indices, batch.label_map, strict=True):
            flipped += torch.equal(label, data.labels[i].flip(-1))
            unflipped += torch.equal(label, data.labels[i])
    assert flipped > 0 and unflipped > 0 and flipped + unflipped == 24
    no_flip = make_trainer(tmp_path / "c", ["train.flip=false"])
    assert all(torch.equal(no_flip.batch(s).label_map, data.labels[no_flip.batch(s).indices]) for s in range(12))


def test_zoom_warps_image_and_label_map_together(tmp_path):
    plain = make_trainer(tmp_path / "a", ["train.flip=false"])
    zoomed = make_trainer(tmp_path / "b", ["train.flip=false", "train.zoom=[1.5, 1.5]"])
    a, b = plain.batch(2), zoomed.batch(2)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.z, b.z)  # the zoom draws after indices, flips, z
    assert not torch.equal(a.label_map, b.label_map)  # zoomed in
    labeled = b.label_map != SPEC.ignore_id
    assert labeled.all()  # zoom-in stays inside the image: no pixel comes from outside it
    # image and label map keep the same geometry: away from label borders (where bilinear blends the image), each
    # zoomed pixel still has its label's colour
    lab = b.label_map[:, None].float()
    uniform = (F.max_pool2d(lab, 5, 1, 2) == -F.max_pool2d(-lab, 5, 1, 2))[:, 0]
    agree = (to_uint8(b.real)[:, 0].long() - (b.label_map * 60 + 30)).abs() <= 1
    unzoomed = (to_uint8(b.real)[:, 0].long() - (a.label_map * 60 + 30)).abs() <= 1  # the wrong geometry
    assert uniform.float().mean() > 0.2 and agree[uniform].float().mean() > 0.95
    assert unzoomed[uniform].float().mean() < 0.8
    assert torch.equal(zoomed.batch(2).label_map, b.label_map)


@pytest.mark.parametrize("discriminator", conditioned_on(DISCRIMINATORS, "label_map"))
@pytest.mark.parametrize("generator", conditioned_on(GENERATORS, "label_map"))
def test_every_generator_and_discriminator_trains(generator, discriminator, tmp_path):
    overrides = [f"model.name={generator}", f"model.discriminator.name={discriminator}"]
    overrides += ["train.r1_gamma=1.0", "train.r1_interval=2"]
    trainer = make_trainer(tmp_path, overrides, tiny_set(conditions=("a", "b")), conditions=("a", "b"))
    before = {k: v.clone() for k, v in [*trainer.G.state_dict().items(), *trainer.D.state_dict().items()]}
    ema_before = [p.clone() for p in trainer.G_ema.parameters()]
    stats = [trainer.train_step(0), trainer.train_step(1)]
    assert "D/r1" in stats[0] and "D/r1" not in stats[1]  # lazy R1 on every r1_interval-th step
    for s in stats:
        assert {"G/loss", "D/loss", "D/real_sign", "ada_p"} <= set(s)
        assert all(torch.isfinite(torch.tensor(v)) for v in s.values()), s
    after = {**trainer.G.state_dict(), **trainer.D.state_dict()}
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k in dict(trainer.G.state_dict()))
    assert any(not torch.equal(after[k], v) for k, v in before.items() if k in dict(trainer.D.state_dict()))
    assert any(not torch.equal(p, q) for p, q in zip(trainer.G_ema.parameters(), ema_before, strict=True))


def test_ada_p_adapts_and_is_checkpointed(tmp_path):
    ada = ["train.augment.p=0.5", "train.augment.ada_images=20"]  # batch 2: p moves by 0.1 per step
    trainer = make_trainer(tmp_path / "run", ada)
    for step in range(3):
        trainer.train_step(step)
    trainer.step = 3
    trainer.checkpoint()
    p = trainer.ada_p
    assert abs(p - 0.5) == pytest.approx(0.1) or abs(p - 0.5) == pytest.approx(0.3)  # three moves of +-0.1
    state = torch.load(trainer.state_path, weights_only=True)
    assert float(state["augment"]["p"]) == p and state["step"] == 3
    resumed = make_trainer(tmp_path / "run", ada, resume=True)
    assert resumed.ada_p == 0.5
    assert resumed.restore() and resumed.ada_p == p and resumed.step == 3
    fixed = make_trainer(tmp_path / "fixed", ada + ["train.augment.adaptive=false"])
    fixed.train_step(0)
    assert fixed.ada_p == 0.5


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from synthlabel.data.toy import make_demo_dataset

    root = tmp_path_factory.mktemp("gan") / "data"
    return make_demo_dataset(root, n_train=6, n_val=1, n_test=1, size=SIZE, seed=0, paired=False)


def test_resumed_run_equals_uninterrupted(demo, tmp_path):
    overrides = TINY + [f"data.path={demo}", "data.size=[32, 48]", "train.steps=6", "train.precision=fp32"]
    # R1 after the resume point, and an ADA p that moves, so every part of the state matters
    overrides += ["train.r1_gamma=1.0", "train.r1_interval=5", "train.augment.p=0.5", "train.augment.ada_images=20"]
    cfg = build_config(GenConfig, {}, overrides)
    full = train_generator(cfg, tmp_path / "full")

    class Interrupt(Exception):
        pass

    def stop_at_4(trainer):
        if trainer.step == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_generator(cfg, tmp_path / "cut", on_step=stop_at_4)
    with pytest.raises(Exception, match="--resume"):
        train_generator(cfg, tmp_path / "cut")
    resumed = train_generator(cfg, tmp_path / "cut", resume=True)
    assert resumed.steps == 6 and resumed.ada_p == pytest.approx(full.ada_p, abs=1e-7)
    a = torch.load(tmp_path / "full" / "train_state.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "train_state.pt", weights_only=True)
    for net in ("G", "D", "G_ema"):
        for key, value in a[net].items():
            assert torch.allclose(value.float(), b[net][key].float(), atol=1e-6), f"{net}.{key}"

    def logged(run_dir, key):
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [r.get(key, -1.0) for r in rows]

    assert logged(tmp_path / "cut", "step") == [1, 2, 3, 4, 5, 6]
    for key in ("G/loss", "D/loss", "D/r1", "ada_p"):
        assert logged(tmp_path / "cut", key) == pytest.approx(logged(tmp_path / "full", key), abs=1e-6), key


def test_resolve_conditions_defaults():
    with_conditions = ClassSpec(SPEC.classes, conditions=("day", "night"))
    meta = [{"condition": "fog"}, {"condition": "dusk"}, {}, {"condition": "fog"}]
    assert resolve_conditions(None, with_conditions, meta) == ["day", "night"]
    assert resolve_conditions(None, SPEC, meta) == ["dusk", "fog"]
    assert resolve_conditions(None, SPEC, [{}, {"condition": ""}]) == []
    assert resolve_conditions(("rain",), with_conditions, meta) == ["rain"]
    assert resolve_conditions((), with_conditions, meta) == []


def test_condition_indices_and_errors():
    meta = [{"file": "a.png", "condition": "night"}, {"file": "b.png", "condition": "day"}]
    assert condition_indices(meta, ["day", "night"]).tolist() == [1, 0]
    assert condition_indices(meta, []) is None
    assert condition_indices([{"file": "a.png"}], ["day"]) is None  # all unknown: the zero one-hot
    with pytest.raises(DataError, match=r"a\.png: condition 'night' is not one the generator knows \(day, dusk\)"):
        condition_indices(meta, ["day", "dusk"])
    with pytest.raises(DataError, match=r"c\.png: no condition"):
        condition_indices(meta + [{"file": "c.png"}], ["day", "night"])
