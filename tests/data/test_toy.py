import csv

import numpy as np
import pytest
from PIL import Image

from synthlabel.data import toy
from synthlabel.data.classes import ClassSpec
from synthlabel.data.datasets import list_splits
from synthlabel.data.toy import DEMO_CLASSES, DEMO_CONDITIONS, demo_spec, make_demo_dataset, render, sample_scene
from synthlabel.errors import DataError

SMALL = (48, 64)


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_demo_spec_matches_class_names_and_conditions():
    spec = demo_spec()
    assert spec.names == list(DEMO_CLASSES)
    assert spec.ignore_index == 255 and spec.conditions == DEMO_CONDITIONS
    assert len({c.color for c in spec.classes}) == 8
    assert spec.classes[DEMO_CLASSES.index("road")].color == (128, 64, 128)


def test_scene_and_render_are_deterministic_by_seed():
    a, b, c = sample_scene(3), sample_scene(3), sample_scene(4)
    assert a.label.dtype == np.int64 and a.label.shape == (96, 128)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(render(a, "night"), render(b, "night"))
    assert not np.array_equal(a.label, c.label)
    assert not np.array_equal(render(a, "day"), render(c, "day"))


def test_conditions_share_label_and_texture_but_differ_in_light():
    scene = sample_scene(11, SMALL)
    label = scene.label.copy()
    images = {c: render(scene, c) for c in DEMO_CONDITIONS}
    np.testing.assert_array_equal(scene.label, label)  # rendering never edits the label map
    for i, first in enumerate(DEMO_CONDITIONS):
        assert images[first].shape == (*SMALL, 3) and images[first].dtype == np.uint8
        for second in DEMO_CONDITIONS[i + 1 :]:
            assert not np.array_equal(images[first], images[second])
    # same texture noise under every condition: road pixels of day and dusk are strongly correlated
    road = (scene.label == DEMO_CLASSES.index("road")) & (scene.detail == 0)
    corr = np.corrcoef(_luma(images["day"])[road], _luma(images["dusk"])[road])[0, 1]
    assert corr > 0.9


def test_night_darker_than_dusk_darker_than_day_and_fog_flattens_contrast():
    scenes = [sample_scene(s, SMALL) for s in range(6)]
    luma = {c: np.stack([_luma(render(s, c)) for s in scenes]) for c in DEMO_CONDITIONS}
    assert luma["night"].mean() < luma["dusk"].mean() < luma["day"].mean()
    assert all(fog.std() < 0.85 * day.std() for fog, day in zip(luma["fog"], luma["day"], strict=True))


def test_class_balance_mimics_real_street_scenes():
    counts = sum(np.bincount(sample_scene(s, SMALL).label.ravel(), minlength=9) for s in range(40))
    assert counts[8] == 0  # every pixel is a valid class id
    frac = dict(zip(DEMO_CLASSES, counts[:8] / counts.sum(), strict=True))
    assert all(v > 0 for v in frac.values()), frac
    assert frac["pedestrian"] < 0.05 and frac["pole"] < 0.05
    assert frac["road"] > 0.1 and frac["sky"] > 0.1


def test_lane_paint_stays_on_road():
    for seed in range(5):
        scene = sample_scene(seed, SMALL)
        paint = scene.detail == toy._PAINT
        assert paint.any() and (scene.label[paint] == DEMO_CLASSES.index("road")).all()


def test_unknown_condition_names_the_allowed_ones(tmp_path):
    with pytest.raises(DataError, match="day, dusk, night, fog"):
        render(sample_scene(0, SMALL), "rain")
    with pytest.raises(DataError, match="rain"):
        make_demo_dataset(tmp_path / "d", conditions=("day", "rain"), condition_weights=(1, 1))
    with pytest.raises(DataError, match="condition_weights"):
        make_demo_dataset(tmp_path / "d", conditions=("day", "fog"), condition_weights=(1, 1, 1))
    assert list(tmp_path.iterdir()) == []


def _meta(root):
    with (root / "meta.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_make_demo_dataset_writes_camvid_layout(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", n_train=5, n_val=2, n_test=3, size=SMALL, seed=1)
    assert root == tmp_path / "demo"
    assert ClassSpec.load(root / "classes.json").names == list(DEMO_CLASSES)
    rows = _meta(root)
    assert list(rows[0]) == ["split", "file", "sequence", "condition", "frame"]
    labels = {}
    for split, count in (("train", 5), ("val", 2), ("test", 3)):
        names = sorted(p.name for p in (root / split).iterdir())
        assert len(names) == count and names == sorted(p.name for p in (root / f"{split}annot").iterdir())
        assert sorted(r["file"] for r in rows if r["split"] == split) == names
        for name in names:
            label = Image.open(root / f"{split}annot" / name)
            assert label.mode == "L" and Image.open(root / split / name).size == (SMALL[1], SMALL[0])
            labels[split, name] = np.asarray(label)
            assert labels[split, name].max() <= 7
    assert all(r["condition"] in DEMO_CONDITIONS and r["sequence"] == "demo" for r in rows)
    train = [v for k, v in labels.items() if k[0] == "train"]
    assert not any(np.array_equal(t, v) for t in train for k, v in labels.items() if k[0] != "train")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temporary folder left behind


def test_condition_weights_pick_conditions(tmp_path):
    root = make_demo_dataset(tmp_path / "d", 4, 0, 0, size=SMALL, conditions=("day", "night"), condition_weights=(0, 1))
    assert {r["condition"] for r in _meta(root)} == {"night"}


def test_a_split_of_zero_images_is_left_out(tmp_path):
    root = make_demo_dataset(tmp_path / "d", n_train=3, n_val=0, n_test=1, size=SMALL)
    assert list_splits(root) == ["train", "test"] and not (root / "val").exists()


def test_paired_mode_writes_every_condition_per_scene(tmp_path):
    root = make_demo_dataset(tmp_path / "p", n_train=2, n_val=1, n_test=1, size=SMALL, paired=True)
    rows = _meta(root)
    assert len(rows) == 4 * len(DEMO_CONDITIONS)
    by_sequence = {}
    for r in rows:
        by_sequence.setdefault(r["sequence"], []).append(r)
    assert len(by_sequence) == 4
    for sequence, group in by_sequence.items():
        assert sorted(r["condition"] for r in group) == sorted(DEMO_CONDITIONS)
        split = group[0]["split"]
        labels = [np.asarray(Image.open(root / f"{split}annot" / r["file"])) for r in group]
        images = [np.asarray(Image.open(root / split / r["file"])) for r in group]
        assert all(np.array_equal(labels[0], x) for x in labels)
        assert not np.array_equal(images[0], images[1])
        assert sequence == f"scene{int(group[0]['frame']):06d}"


def test_non_empty_folder_is_refused_and_left_unchanged(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="empty folder"):
        make_demo_dataset(out, 1, 1, 1, size=SMALL)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    make_demo_dataset(out, 1, 1, 1, size=SMALL, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "meta.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_render(scene, condition):
        calls.append(condition)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return render(scene, condition)

    monkeypatch.setattr(toy, "render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / "demo", 3, 1, 1, size=SMALL)
    assert list(tmp_path.iterdir()) == []
