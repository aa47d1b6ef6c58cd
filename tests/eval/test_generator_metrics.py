"""Generator metrics without pretrained nets: label fidelity, per-sample fidelity, diversity, memorization and
condition fidelity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from synthlabel import open_dataset
from synthlabel.config import SegConfig, SegModelConfig
from synthlabel.data.sample import TensorSet, to_uint8
from synthlabel.data.toy import demo_spec, make_demo_dataset
from synthlabel.device import Precision
from synthlabel.downstream.segmenter import build_segmenter, save_segmenter
from synthlabel.downstream.workflow import fidelity_report
from synthlabel.eval.generator_metrics import (
    ConditionClassifier,
    ConditionClassifierConfig,
    condition_fidelity,
    diversity,
    label_fidelity_report,
    memorization,
    train_condition_classifier_on,
)

K = 4
SPEC = demo_spec()  # only the first K classes appear in the hand-made maps
FP32 = Precision(torch.device("cpu"), False)
LEVELS = torch.linspace(-1, 1, SPEC.num_classes)


class ColorSegmenter(nn.Module):
    """A 'segmenter' that reads the class from the red channel level: perfect on images made by `encode`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, K, H, W]
        return -((x[:, :1] - LEVELS[None, :, None, None]) ** 2)


def encode(labels: torch.Tensor) -> torch.Tensor:
    """[N, H, W] ids -> [N, 3, H, W] images whose red channel holds the class level (ignore -> class 0)."""
    red = LEVELS[labels.clamp(0, SPEC.num_classes - 1)]
    return torch.stack([red, torch.zeros_like(red), torch.zeros_like(red)], dim=1)


def random_maps(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, K, (n, 16, 24), generator=g)
    maps[:, :2] = SPEC.ignore_index
    return maps


def fidelity(rendered: torch.Tensor, maps: torch.Tensor) -> dict:
    """`label_fidelity_report` of images rendered from `rendered` against `maps` (real set: `maps` rendered)."""
    meta = [{"file": f"{i}.png"} for i in range(len(maps))]
    synth, real = TensorSet(to_uint8(encode(rendered)), maps, meta), TensorSet(to_uint8(encode(maps)), maps, meta)
    return label_fidelity_report(ColorSegmenter(), synth, real, SPEC, FP32)


def test_label_fidelity_is_one_for_a_perfect_prediction_and_drops_for_a_wrong_class():
    maps = random_maps()
    perfect = fidelity(maps, maps)["synthetic"]
    assert perfect["miou"] == 1.0 and perfect["pixel_accuracy"] == 1.0
    assert perfect["per_class_iou"]["pole"] is None  # absent classes are left out
    wrong = maps.clone()
    wrong[wrong == 1] = 2  # class 1 rendered like class 2
    broken = fidelity(wrong, maps)["synthetic"]
    assert broken["per_class_iou"][SPEC.names[1]] == 0.0 and broken["miou"] < 0.75


def test_per_sample_fidelity_is_miou_over_present_classes():
    maps = torch.zeros(4, 16, 24, dtype=torch.long)
    maps[:, 4:6, 4:6] = 1  # a small object of class 1 (4 pixels) on class 0
    rendered = maps.clone()
    rendered[1, 10:14, 0:10] = 2  # 40 background pixels wrong, object right
    rendered[2, 4:6, 4:6] = 0  # object missing: fewer wrong pixels, but a whole class lost
    rendered[3] = 3  # nothing right
    scores = list(fidelity(rendered, maps)["per_sample"].values())
    assert scores[0] == 1.0
    assert scores[0] > scores[1] > scores[2] > scores[3] == 0.0
    empty = torch.full((1, 16, 24), SPEC.ignore_index)
    assert fidelity(empty, empty)["per_sample"] == {"0.png": None}  # no labeled pixel: no score


def test_fidelity_report_of_the_real_test_set_against_itself_is_one(demo_root, tmp_path):
    torch.manual_seed(0)
    model = build_segmenter("unet", SPEC.num_classes, width=8, depth=3)
    cfg = SegConfig(model=SegModelConfig(width=8, depth=3))
    seg_dir = save_segmenter(tmp_path / "seg", model, cfg, SPEC, (32, 48))
    out = tmp_path / "fidelity.json"
    report = fidelity_report(seg_dir, demo_root, demo_root, synth_split="test", precision=FP32, out=out)
    assert report["synthetic_miou"] == report["real_miou"] and report["fidelity"] == pytest.approx(1.0)
    present = {n: v for n, v in report["per_class_fidelity"].items() if v is not None}
    assert present and all(v == pytest.approx(1.0) for v in present.values())
    test = open_dataset(demo_root, "test")
    assert list(report["per_sample"]) == [r.image.name for r in test.records]
    assert all(0.0 <= s <= 1.0 for s in report["per_sample"].values())
    assert set(report["per_condition_miou"]) == {r.meta["condition"] for r in test.records}
    assert json.loads(out.read_text())["fidelity"] == report["fidelity"]


def test_diversity_is_zero_for_identical_renders_and_grows_with_their_differences():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(3, 1, 3, 32, 48, generator=g) * 2 - 1
    assert diversity(base.expand(-1, 4, -1, -1, -1)) == 0.0
    smooth = torch.rand(3, 4, 3, 4, 6, generator=g) * 2 - 1  # coarse changes survive downsampling
    up = torch.nn.functional.interpolate(smooth.flatten(0, 1), size=(32, 48)).reshape(3, 4, 3, 32, 48)
    small = diversity((base + 0.1 * up).clamp(-1, 1))
    large = diversity((base + 0.5 * up).clamp(-1, 1))
    assert 0 < small < large
    with pytest.raises(ValueError):
        diversity(base)


def test_memorization_flags_a_copy_of_a_training_image_but_not_new_images(demo_root):
    train = open_dataset(demo_root, "train").load().images  # [8, 3, 32, 48] uint8
    val = open_dataset(demo_root, "val").load().images
    darker = (train[5].float() * 0.5 + 10).round().to(torch.uint8)  # a dimmed copy is still a copy
    noise = torch.randint(0, 256, (1, 3, 32, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    generated = torch.cat([train[3:4], darker[None], noise, val[:2]])
    result = memorization(generated, train)
    assert result["near_copy"] == [True, True, False, False, False]
    assert result["nn_index"][:2] == [3, 5]
    assert result["near_copy_rate"] == pytest.approx(2 / 5)
    assert result["threshold"] == pytest.approx(0.5 * result["train_nn_percentile"])
    assert memorization(generated, train, threshold=1e-9)["near_copy_rate"] <= 1 / 5


@pytest.fixture(scope="module")
def day_night(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("daynight") / "data"
    kw = dict(conditions=("day", "night"), condition_weights=(1, 1), paired=True, size=(32, 48))
    return make_demo_dataset(root, n_train=8, n_val=0, n_test=4, seed=1, **kw)


def test_condition_classifier_learns_day_vs_night(day_night, tmp_path):
    cfg = ConditionClassifierConfig(width=8, size=(32, 48), steps=40, batch_size=16)
    classifier = train_condition_classifier_on(open_dataset(day_night, "train"), cfg)
    test = open_dataset(day_night, "test").load()
    truth = torch.tensor([classifier.conditions.index(m["condition"]) for m in test.meta])
    assert (classifier.predict(test.images) == truth).double().mean() > 0.8
    night = test.images[[i for i, m in enumerate(test.meta) if m["condition"] == "night"]]
    assert condition_fidelity(classifier, night, "night") > 0.8
    assert condition_fidelity(classifier, night, "day") < 0.2
    loaded = ConditionClassifier.load(classifier.save(tmp_path / "clf"))
    assert torch.equal(loaded.predict(test.images), classifier.predict(test.images))
