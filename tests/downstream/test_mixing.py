"""Mixing real and synthetic sources, class-aware sampling, copy-paste augmentation."""

from __future__ import annotations

import json

import pytest
import torch

from synthlabel.config import CopyPasteConfig, MixConfig, SourceConfig, build_config
from synthlabel.data.classes import ClassInfo, ClassSpec
from synthlabel.data.copy_paste import CopyPaste, rare_classes
from synthlabel.data.sample import TensorSet
from synthlabel.downstream.mixing import MixedSampler, Source, build_sources, load_source, repeat_factors
from synthlabel.errors import DataError


def tensor_set(n: int, value: int, size=(8, 10), label=0) -> TensorSet:
    images = torch.full((n, 3, *size), value, dtype=torch.uint8)
    return TensorSet(images, torch.full((n, *size), label, dtype=torch.long), [{} for _ in range(n)])


def sources(n_extra: int = 1, weights=(1.0,)) -> list[Source]:
    out = [Source("real", tensor_set(20, 0))]
    out += [Source(f"syn{i}", tensor_set(30, 10 * (i + 1)), weights[i]) for i in range(n_extra)]
    return out


def draw_all(sampler: MixedSampler, steps: int) -> list[list[tuple[int, int]]]:
    return [sampler.draw(s, torch.Generator().manual_seed(1000 + s)) for s in range(steps)]


@pytest.mark.parametrize("fraction,batch", [(0.25, 8), (0.3, 8), (0.5, 4), (0.1, 6)])
def test_mixed_fraction_holds_over_many_batches(fraction, batch):
    sampler = MixedSampler(sources(), MixConfig(fraction=fraction), batch, 2000, seed=0)
    picks = draw_all(sampler, 2000)
    share = sum(s != 0 for p in picks for s, _ in p) / (2000 * batch)
    assert abs(share - fraction) < 0.015
    assert all(len(p) == batch for p in picks)
    assert picks == draw_all(MixedSampler(sources(), MixConfig(fraction=fraction), batch, 2000, seed=0), 2000)


def test_alternate_mode_alternates_whole_batches():
    sampler = MixedSampler(sources(), MixConfig(mode="alternate", fraction=0.5), 4, 100, seed=0)
    kinds = [{s != 0 for s, _ in p} for p in draw_all(sampler, 100)]
    assert all(len(k) == 1 for k in kinds)  # a batch is all real or all synthetic
    synthetic = [k == {True} for k in kinds]
    assert synthetic == [i % 2 == 1 for i in range(100)]


def test_alternate_mode_with_a_quarter_share():
    sampler = MixedSampler(sources(), MixConfig(mode="alternate", fraction=0.25), 4, 100, seed=0)
    synthetic = [all(s != 0 for s, _ in p) for p in draw_all(sampler, 100)]
    assert sum(synthetic) == 25 and synthetic[3] and not synthetic[0]


def test_pretrain_mode_uses_extra_sources_first():
    sampler = MixedSampler(sources(), MixConfig(mode="pretrain", pretrain=0.3), 4, 100, seed=0)
    synthetic = [all(s != 0 for s, _ in p) for p in draw_all(sampler, 100)]
    assert synthetic == [i < 30 for i in range(100)]


@pytest.mark.parametrize("fraction,batch,expected", [(0.25, 8, 2), (0.3, 8, 2), (0.5, 6, 3), (0.4, 16, 6)])
def test_fixed_counts_hold_round_fraction_times_batch_in_every_batch(fraction, batch, expected):
    """The classification study's rule: the same count every batch, and with one extra source the draw is the
    plain uniform draw of real then synthetic indices (no source draw)."""
    sampler = MixedSampler(sources(), MixConfig(fraction=fraction), batch, 50, seed=0, counts="fixed")
    for step, picks in enumerate(draw_all(sampler, 50)):
        assert sum(s != 0 for s, _ in picks) == expected
        g = torch.Generator().manual_seed(1000 + step)
        real = torch.randint(20, (batch - expected,), generator=g).tolist()
        assert picks == [(0, i) for i in real] + [(1, i) for i in torch.randint(30, (expected,), generator=g).tolist()]


def test_fixed_counts_split_over_sources_by_weight():
    sampler = MixedSampler(sources(2, weights=(3.0, 1.0)), MixConfig(fraction=0.5), 16, 10, seed=0, counts="fixed")
    for picks in draw_all(sampler, 10):
        assert torch.bincount(torch.tensor([s for s, _ in picks]), minlength=3).tolist() == [8, 6, 2]


def test_source_weights_split_the_synthetic_share():
    srcs = sources(2, weights=(3.0, 1.0))
    picks = draw_all(MixedSampler(srcs, MixConfig(fraction=0.5), 8, 1000, seed=0), 1000)
    counts = torch.bincount(torch.tensor([s for p in picks for s, _ in p]), minlength=3).double()
    assert abs(counts[1] / (counts[1] + counts[2]) - 0.75) < 0.03
    assert abs(counts[0] / counts.sum() - 0.5) < 0.02


def test_real_only_sampler_matches_the_plain_draw():
    """With no extra sources the stream is the plain uniform draw, so real-only results stay comparable."""
    real = [Source("real", tensor_set(20, 0))]
    sampler = MixedSampler(real, MixConfig(), 8, 10, seed=0)
    got = [i for _, i in sampler.draw(3, torch.Generator().manual_seed(7))]
    assert got == torch.randint(20, (8,), generator=torch.Generator().manual_seed(7)).tolist()


def test_repeat_factors_favour_images_with_rare_classes():
    labels = torch.zeros(10, 4, 4, dtype=torch.long)
    labels[0, 0, 0] = 2  # class 2 in one image of ten
    labels[:5, 1, 1] = 1  # class 1 in half of them
    r = repeat_factors(labels, 3, threshold=0.5)
    assert r[0] == pytest.approx((0.5 / 0.1) ** 0.5)
    assert r[1] == pytest.approx(1.0) and r[9] == pytest.approx(1.0)
    src = Source("real", TensorSet(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), labels, [{}] * 10), image_weights=r)
    picks = draw_all(MixedSampler([src], MixConfig(), 8, 500, seed=0), 500)
    share0 = sum(i == 0 for p in picks for _, i in p) / (500 * 8)
    assert share0 == pytest.approx(float(r[0] / r.sum()), abs=0.01)


def test_sources_are_filtered_nested_and_checked(tmp_path, fake_data):
    root = fake_data.folders(tmp_path / "syn", n=6, splits=("train",))
    spec = ClassSpec.load(root / "classes.json")
    one = load_source(SourceConfig(path=str(root), images=2), spec, None, seed=0)
    two = load_source(SourceConfig(path=str(root), images=4), spec, None, seed=0)
    first = {m["file"] for m in one.data.meta}
    assert len(one.data) == 2 and first <= {m["file"] for m in two.data.meta}  # amounts are nested
    keep = tmp_path / "keep.txt"
    keep.write_text("".join(m["file"] + "\n" for m in two.data.meta[:3]))
    assert len(load_source(SourceConfig(path=str(root), keep=str(keep)), spec, None, seed=0).data) == 3
    target = tmp_path / "target.json"
    target.write_text(json.dumps({"classes": [{"id": 0, "name": "ground", "color_rgb": [1, 1, 1]}]}))
    with pytest.raises(DataError, match="class_map"):
        load_source(SourceConfig(path=str(root)), ClassSpec.load(target), None, seed=0)


def test_class_map_harmonizes_each_source(tmp_path, fake_data):
    """A source labeled sky/road/car joins data labeled ground/vehicle through its own class map."""
    root = fake_data.folders(tmp_path / "syn", n=4, splits=("train",))
    target = tmp_path / "target.json"
    target.write_text(
        json.dumps(
            {
                "classes": [
                    {"id": 0, "name": "ground", "color_rgb": [1, 1, 1]},
                    {"id": 1, "name": "vehicle", "color_rgb": [2, 2, 2]},
                ]
            }
        )
    )
    cmap = tmp_path / "to_target.yaml"
    cmap.write_text("target: target.json\nmapping:\n  sky: ignore\n  road: ground\n  car: vehicle\n")
    spec = ClassSpec.load(target)
    real = tensor_set(3, 0, size=(12, 16))
    mix = build_config(MixConfig, {"sources": [{"path": str(root), "class_map": str(cmap), "name": "syn"}]})
    built = build_sources(real, spec, mix, None, 0)
    assert [s.name for s in built] == ["real", "syn"]
    raw = fake_data.label_pattern((12, 16), 0)
    expected = torch.tensor([255, 0, 1, 255])[torch.from_numpy(raw)]
    assert torch.equal(built[1].data.labels[0], expected)


def test_copy_paste_pastes_rare_segments_with_their_pixels():
    labels = torch.zeros(4, 16, 16, dtype=torch.long)
    images = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    labels[0, 4:10, 6:9] = 2  # a rare "pole" in image 0, drawn in pixel value 200
    images[0, :, 4:10, 6:9] = 200
    labels[:, 12:, :] = 1
    spec = ClassSpec(tuple(ClassInfo(i, n, (i, i, i)) for i, n in enumerate(["sky", "road", "pole"])))
    assert rare_classes(labels, spec) == [2]
    data = TensorSet(images, labels, [{}] * 4)
    cp = CopyPaste(data, spec, CopyPasteConfig(enabled=True, prob=1.0, max_pastes=1, min_area=4, shift=0.0))
    assert len(cp) == 1
    out_img, out_lab = cp(images[1:3], labels[1:3], torch.Generator().manual_seed(0), sources=[1, 2])
    assert (out_lab == 2).sum() == 2 * 18  # the 6x3 segment in both images, at its own place (shift 0)
    assert torch.equal(out_img[:, 0][out_lab == 2], torch.full((36,), 200, dtype=torch.uint8))
    assert torch.equal(out_lab[out_lab != 2], labels[1:3][out_lab != 2])  # nothing else changed
    same, _ = cp(images[:1], labels[:1], torch.Generator().manual_seed(0), sources=[0])
    assert torch.equal(same, images[:1])  # an image never receives its own segments


def test_mix_config_rejects_bad_values():
    from synthlabel.errors import ConfigError

    with pytest.raises(ConfigError, match="fraction"):
        build_config(MixConfig, {"fraction": 1.5})
    with pytest.raises(ConfigError, match="mode"):
        build_config(MixConfig, {"mode": "shuffle"})
