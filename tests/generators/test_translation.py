"""The condition translator (issue 13): PatchNCE and semantic consistency do what they say, `train-translator`
trains from labeled source images and unlabeled target images (never their labels), resumes exactly, and
`translate --method model` writes translations at the source size with the source labels byte for byte."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from synthlabel.checkpoint import load_state, model_hash
from synthlabel.cli import main
from synthlabel.config import TranslatorConfig, build_config
from synthlabel.data import manifest
from synthlabel.data.datasets import open_dataset
from synthlabel.data.sample import to_float
from synthlabel.errors import ConfigError, DataError
from synthlabel.generators.io import load_generator
from synthlabel.generators.translation import read_target_images, train_translator, translate_images
from synthlabel.generators.translator import PatchProjector, ResnetTranslator
from synthlabel.synth.translate import translate
from synthlabel.train.batch import GANBatch
from synthlabel.train.losses import TranslationLoss, patch_nce_loss


def test_patch_nce_is_low_when_each_patch_matches_its_own_location_and_high_when_shuffled():
    g = torch.Generator().manual_seed(0)
    key = torch.nn.functional.normalize(torch.randn(2, 32, 16, generator=g), dim=-1)
    matched = patch_nce_loss(key, key)
    shuffled = patch_nce_loss(key[:, torch.randperm(32, generator=g)], key)
    assert matched < 0.5 < np.log(32) - 1 < shuffled


class Identity(torch.nn.Module):
    """A translator that returns its input (with one parameter, for the optimizer)."""

    conditioning = ("image", "condition", "noise")

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, image, z=None, condition=None):
        return image + 0 * self.unused


def test_consistency_is_zero_for_the_identity_translator_and_a_fixed_segmenter():
    torch.manual_seed(0)
    from synthlabel.generators.translator import ImagePatchGAN

    segmenter = torch.nn.Conv2d(3, 2, 1)
    loss = TranslationLoss(Identity(), ImagePatchGAN(num_conditions=1, width=8), torch.nn.Identity(), segmenter,
                           nce=0.0)  # fmt: skip
    source = torch.rand(2, 3, 16, 16) * 2 - 1
    labels = torch.randint(0, 2, (2, 16, 16))
    batch = GANBatch(source.clone(), torch.zeros(2, 0), label_map=labels, condition=torch.zeros(2, dtype=torch.long),
                     source=source)  # fmt: skip
    assert loss("Gmain", batch)[1]["G/consistency"] == 0.0


class FirstTwoChannels(torch.nn.Module):
    """A 'segmenter' whose logits are the image's first two channels (hand-made margins)."""

    def forward(self, image):
        return image[:, :2]


def test_margin_consistency_only_asks_that_right_predictions_keep_their_margin():
    """consistency_kind="margin": zero for the identity and for a translation that lowers the logits but keeps
    each margin up to m; a pixel the segmenter read right on the source and reads wrong on the translation costs
    min(m, source margin) - translation margin; a pixel it read wrong on the source costs nothing."""
    from synthlabel.generators.translator import ImagePatchGAN

    loss = TranslationLoss(Identity(), ImagePatchGAN(num_conditions=1, width=8), torch.nn.Identity(),
                           FirstTwoChannels(), nce=0.0, consistency_kind="margin", consistency_margin=1.0)  # fmt: skip
    labels = torch.tensor([[[0, 1, 0, 255]]])  # [1, 1, 4]; the last pixel is ignored
    source = torch.zeros(1, 3, 1, 4)
    source[0, 0, 0] = torch.tensor([3.0, 0.0, -1.0, 0.0])  # class-0 logit
    source[0, 1, 0] = torch.tensor([0.0, 0.5, 0.0, 9.0])  # class-1 logit: margins 3, 0.5, -1 (wrong), ignored
    batch = GANBatch(source.clone(), torch.zeros(1, 0), label_map=labels, condition=torch.zeros(1, dtype=torch.long),
                     source=source)  # fmt: skip
    assert loss("Gmain", batch)[1]["G/consistency"] == 0.0
    kept = source.clone()
    kept[0, 0, 0, 0] = 1.0  # margin 3 -> 1: still at the cap m = 1
    kept[0, 0, 0, 2] = -5.0  # read wrong on the source anyway
    kept[0, 1, 0, 3] = -9.0  # ignored pixel
    assert loss.margin_term(kept, batch).item() == 0.0
    flipped = source.clone()
    flipped[0, 1, 0, 0] = 3.5  # margin 3 -> -0.5: costs min(1, 3) + 0.5 = 1.5
    flipped[0, 0, 0, 1] = 0.25  # margin 0.5 -> 0.25: costs 0.25
    assert loss.margin_term(flipped, batch).item() == pytest.approx((1.5 + 0.25) / 3)
    with pytest.raises(ValueError, match="consistency_kind"):
        TranslationLoss(Identity(), ImagePatchGAN(num_conditions=1, width=8), torch.nn.Identity(),
                        FirstTwoChannels(), consistency_kind="kl")  # fmt: skip


def test_consistency_pulls_the_translation_towards_the_source_labels():
    """Gmain's consistency term is the frozen segmenter's cross-entropy on the translation against the source
    labels, less that on the source; its gradient reaches G and not the segmenter."""
    torch.manual_seed(0)
    G = ResnetTranslator(num_conditions=1, width=8, blocks=1, image_size=(16, 16))
    from synthlabel.generators.translator import ImagePatchGAN

    D = ImagePatchGAN(num_conditions=1, width=8)
    segmenter = torch.nn.Conv2d(3, 2, 1)
    loss = TranslationLoss(G, D, PatchProjector(G.feature_channels), segmenter, nce=0.0, consistency=1.0)
    source = torch.rand(2, 3, 16, 16) * 2 - 1
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, :, 8:] = 1
    batch = GANBatch(source.clone(), torch.zeros(2, 0), label_map=labels, condition=torch.zeros(2, dtype=torch.long),
                     source=source)  # fmt: skip
    value, stats = loss("Gmain", batch)
    ce = torch.nn.functional.cross_entropy
    expected = ce(segmenter(G(source, None, batch.condition)), labels) - ce(segmenter(source), labels)
    assert stats["G/consistency"] == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)
    value.backward()
    assert all(p.grad is None for p in segmenter.parameters())
    assert G.stem[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="needs a real-data segmenter"):
        TranslationLoss(G, D, PatchProjector(G.feature_channels), None, consistency=1.0)


@pytest.fixture(scope="module")
def setup(demo_root, tmp_path_factory):
    """Day source images (labeled), a folder of night images without labels, a tiny real-data segmenter."""
    root = tmp_path_factory.mktemp("translation")
    night = root / "night"
    night.mkdir()
    val = open_dataset(demo_root, "val")
    for record in val.records:  # images only: a target folder never has masks
        shutil.copy(record.image, night / record.image.name)
    seg = root / "seg"
    overrides = [f"data.path={demo_root}", "data.size=[32, 48]", "model.width=8", "model.depth=3",
                 "train.steps=3", "train.batch_size=2", "train.warmup_steps=1"]  # fmt: skip
    assert main(["train-seg", *overrides, "--out", str(seg)]) == 0
    return root, night, seg / "model"


def config(demo_root, target, segmenter, steps=4, extra=()) -> TranslatorConfig:
    overrides = [
        f"data.path={demo_root}", "data.size=[32, 48]", f"target={target}", "conditions=[night]",
        *([f"segmenter={segmenter}"] if segmenter else []), "model.width=8", "model.blocks=2", "model.z_dim=4",
        "model.discriminator.width=8",
        f"train.steps={steps}", "train.batch_size=2", "train.log_every=1", "train.sample_every=2",
        "train.checkpoint_every=2", "train.sample_rows=2", "train.nce_patches=16",
    ]  # fmt: skip
    return build_config(TranslatorConfig, {}, overrides + list(extra))


def test_train_translator_writes_a_model_that_translates_and_resumes_exactly(setup, demo_root, tmp_path):
    root, night, seg = setup
    result = train_translator(config(demo_root, night, seg), tmp_path / "whole")
    assert result.steps == 4 and sorted(p.name for p in result.samples_dir.iterdir()) == [
        "step_000002.png", "step_000004.png",
    ]  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert {"G/adv", "G/nce", "G/consistency", "D/loss"} <= set(rows[-1])
    G, meta = load_generator(result.model_dir)
    assert meta["conditions"] == ["night"] and meta["kind"] == "translator" and G.conditioning[0] == "image"

    def stop_at_3(trainer):
        if trainer.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_translator(config(demo_root, night, seg), tmp_path / "cut", on_step=stop_at_3)
    train_translator(config(demo_root, night, seg), tmp_path / "cut", resume=True)
    whole, cut = load_state(tmp_path / "whole" / "train_state.pt"), load_state(tmp_path / "cut" / "train_state.pt")
    for key in ("G", "D", "G_extra/projector"):
        for name, value in whole[key].items():
            assert torch.equal(value, cut[key][name]), (key, name)


def test_translate_with_a_model_keeps_labels_and_the_source_size(setup, demo_root, tmp_path):
    root, night, seg = setup
    model = train_translator(config(demo_root, night, seg, steps=2), tmp_path / "run").model_dir
    source = open_dataset(demo_root, "train")
    out = translate(source, tmp_path / "t", ["night"], method="model", model=model, k=2, segmenter=seg)
    rows = manifest.rows(out)
    assert len(rows) == 2 * len(source) and {r["generator_hash"] for r in rows} == {model_hash(model)}
    ds = open_dataset(out, "train")
    by_name = {r.image.name: r for r in source.records}
    for row, record in zip(rows, ds.records, strict=True):
        assert record.mask.read_bytes() == by_name[row["source"]].mask.read_bytes()
        assert Image.open(record.image).size == Image.open(by_name[row["source"]].image).size
    first, second = (np.array(Image.open(ds.records[i].image)) for i in (0, 1))  # two seeds of one source
    assert not np.array_equal(first, second)
    again = translate(source, tmp_path / "again", ["night"], method="model", model=model, k=2)
    same = [(p.relative_to(again), p.read_bytes()) for p in sorted(again.rglob("*.png"))]
    assert same == [(p.relative_to(out), p.read_bytes()) for p in sorted(out.rglob("*.png"))]  # deterministic
    assert "per_sample" in json.loads((out / "consistency.json").read_text())
    with pytest.raises(DataError, match="among night"):
        translate(source, tmp_path / "bad", ["fog"], method="model", model=model)
    G = load_generator(model)[0]
    big = torch.randint(0, 256, (1, 3, 64, 96), dtype=torch.uint8)  # 2x the model's size: the change is upsampled
    assert translate_images(G, big, 0, [0]).shape == big.shape


def test_target_folders_and_config_errors_are_named(setup, demo_root, tmp_path):
    root, night, seg = setup
    with pytest.raises(DataError, match="put each one's images"):
        read_target_images(night, ["night", "fog"], (32, 48))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        read_target_images(empty, ["night"], (32, 48))
    cfg = config(demo_root, night, None)
    with pytest.raises(ConfigError, match="needs `segmenter`"):
        train_translator(cfg, tmp_path / "no_seg")
    assert not (tmp_path / "no_seg").exists()
    ok = train_translator(config(demo_root, night, None, steps=1, extra=["train.consistency=0"]), tmp_path / "abl")
    assert ok.steps == 1
    with pytest.raises(ConfigError, match="not an image -> image translator"):
        train_translator(config(demo_root, night, seg, extra=["model.name=spade"]), tmp_path / "wrong")


def test_target_labels_are_never_read(setup, demo_root, tmp_path):
    """A target folder beside garbage 'annotation' files (CamVid's <split>annot naming, a bad PNG, a text file)
    trains exactly the translator that the bare folder trains."""
    root, night, seg = setup
    labeled = tmp_path / "labeled"
    shutil.copytree(night, labeled / "night")
    (labeled / "nightannot").mkdir()
    for image in night.iterdir():
        (labeled / "nightannot" / image.name).write_bytes(b"not a mask")
    (labeled / "night" / "labels.txt").write_text("garbage")
    a = train_translator(config(demo_root, night, seg, steps=2), tmp_path / "bare").model_dir
    b = train_translator(config(demo_root, labeled, seg, steps=2), tmp_path / "beside").model_dir
    assert (a / "G.safetensors").read_bytes() == (b / "G.safetensors").read_bytes()


def test_paired_translation_learns_each_scene_from_its_own_target_image(tmp_path):
    """`paired: true` on `make-demo --paired` data: every batch row is a day image and the night render of the same
    scene (meta.csv sequence + frame), flipped together; G gets the L1 term; no target folder is read."""
    from synthlabel.data.toy import make_demo_dataset
    from synthlabel.downstream.workflow import load_training_data
    from synthlabel.generators.translation import TranslationTask, scene_pairs

    root = make_demo_dataset(tmp_path / "paired", n_train=4, n_val=1, n_test=1, size=(32, 48), paired=True,
                             conditions=("day", "night"), condition_weights=(0.5, 0.5))  # fmt: skip
    cfg = config(root, tmp_path / "nowhere", None, steps=2, extra=["paired=true", "source_condition=day",
                                                                   "train.consistency=0"])  # fmt: skip
    train, _, spec = load_training_data(cfg.data.model_copy(update={"val_split": None}))
    source, pairs = scene_pairs(train, "day", ["night"])
    task = TranslationTask(cfg, source, pairs, spec, tmp_path / "task")
    batch = task.batch(0)
    scene = {(m["sequence"], m["condition"]): i for i, m in enumerate(train.meta)}
    for row, i in enumerate(batch.indices.tolist()):
        night = train.images[scene[(source.meta[i]["sequence"], "night")]]
        assert torch.equal(batch.real[row], to_float(night)) or torch.equal(batch.real[row], to_float(night.flip(-1)))
        flipped = not torch.equal(batch.real[row], to_float(night))
        assert torch.equal(batch.source[row], to_float(source.images[i].flip(-1) if flipped else source.images[i]))
    result = train_translator(cfg, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert result.steps == 2 and "G/l1" in rows[-1]
    with pytest.raises(ConfigError, match="needs source_condition"):
        scene_pairs(train, None, ["night"])
