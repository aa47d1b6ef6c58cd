"""Class bank: exact segments on a hand-made map, statistics learned from demo scenes, save -> load, bad dirs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthlabel.data.datasets import open_dataset
from synthlabel.data.toy import CAR, PEDESTRIAN, POLE, ROAD, SIDEWALK
from synthlabel.errors import DataError
from synthlabel.synth.class_bank import ClassBank


def hand_made_map() -> np.ndarray:
    """[20, 30]: class 2 as a 3x4 block standing mostly on class 3, a diagonal 6-pixel blob, and one stray pixel."""
    m = np.zeros((20, 30), np.int64)
    m[2:5, 3:7] = 2  # block A, area 12
    m[5:7, 2:8] = 3  # what block A mostly stands on
    m[5:7, 3] = 1
    for y, x in [(10, 10), (11, 11), (12, 12), (12, 13), (13, 12), (13, 13)]:
        m[y, x] = 2  # blob B, connected only diagonally: one segment under 8-connectivity
    m[17, 25] = 2  # too small for min_area=2
    return m


def test_two_blobs_give_two_exact_segments(spec):
    bank = ClassBank.build([hand_made_map()], spec, min_area=2)
    a, b = sorted(bank.segments(2), key=lambda s: s.bbox)
    assert (a.bbox, a.area, b.bbox, b.area) == ((2, 3, 5, 7), 12, (10, 10, 14, 14), 6)
    assert a.mask.shape == (3, 4) and a.mask.all()
    assert b.mask.sum() == 6 and b.mask[0, 0] and not b.mask[0, 1]
    assert a.bottom_y == pytest.approx(5 / 20) and a.center_x == pytest.approx(5 / 30)
    assert (a.support_class, b.support_class) == (3, 0)
    assert a.neighbours == pytest.approx({0: 12 / 18, 1: 1 / 18, 3: 5 / 18})  # 18-pixel ring: 6 below, 5 on class 3
    assert bank.segments(4) == [] and [s.area for s in bank.segments(1)] == [2]
    assert len(ClassBank.build([hand_made_map()], spec, min_area=1).segments(2)) == 3


def test_segments_cover_their_class_exactly(demo_maps, spec):
    bank = ClassBank.build(demo_maps, spec, min_area=1)
    for c in range(spec.num_classes):
        assert sum(s.area for s in bank.segments(c)) == sum(int((m == c).sum()) for m in demo_maps)
    for s in bank.segments(PEDESTRIAN)[:10]:
        y0, x0, y1, x1 = s.bbox
        crop = demo_maps[s.source][y0:y1, x0:x1]
        assert (crop[s.mask] == PEDESTRIAN).all() and s.mask.sum() == s.area


def test_classes_argument_limits_indexing(demo_maps, spec):
    bank = ClassBank.build(demo_maps, spec, classes=["pedestrian", POLE])
    assert bank.classes == (PEDESTRIAN, POLE)
    assert bank.object_classes == (PEDESTRIAN, POLE)
    assert set(bank.ground_classes) == {ROAD, SIDEWALK}  # learned from all classes even when not indexed
    with pytest.raises(DataError, match="not indexed"):
        bank.segments(CAR)


def test_learned_support_ground_and_perspective(demo_bank):
    assert set(demo_bank.ground_classes) == {ROAD, SIDEWALK}
    ped = demo_bank.stats(PEDESTRIAN)
    assert ped.usual_supports() and ped.usual_supports() <= {ROAD, SIDEWALK}
    assert max(ped.support, key=ped.support.get) in (ROAD, SIDEWALK)
    assert demo_bank.stats(CAR).usual_supports() == {ROAD}
    assert demo_bank.stats(POLE).usual_supports() <= {ROAD, SIDEWALK}
    for c in (PEDESTRIAN, CAR, POLE):  # nearer (lower) objects are taller
        st = demo_bank.stats(c)
        assert st.height_slope > 0.3 and st.height_at(0.9) > st.height_at(0.6) > 0
        assert 0.45 < st.bottom_y_quantile(0.01) < st.bottom_y_quantile(0.5) < st.bottom_y_quantile(0.99) <= 1.0
    json.dumps(ped.to_json(), allow_nan=False)


def test_rejects_bad_label_maps(spec):
    with pytest.raises(DataError, match="expected \\[H, W\\]"):
        ClassBank.build([np.zeros((2, 3, 4), np.int64)], spec)
    with pytest.raises(DataError, match="outside 0..7"):
        ClassBank.build([np.full((4, 4), 9)], spec)


def test_save_load_round_trip(demo_bank, tmp_path):
    out = demo_bank.save(tmp_path / "bank")
    assert sorted(p.name for p in out.iterdir()) == ["bank.json", "masks.npz"]
    loaded = ClassBank.load(out)
    assert loaded == demo_bank and len(loaded) == len(demo_bank) > 100
    assert loaded.ground_classes == demo_bank.ground_classes
    assert loaded.stats(POLE).to_json() == demo_bank.stats(POLE).to_json()
    demo_bank.save(out)  # overwriting an existing bank leaves no temp or old folders behind
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]


def test_load_missing_or_corrupt_bank(demo_bank, tmp_path):
    with pytest.raises(DataError, match="not a class bank"):
        ClassBank.load(tmp_path / "nope")
    out = demo_bank.save(tmp_path / "bank")
    meta = json.loads((out / "bank.json").read_text())
    meta["segments"] = meta["segments"][:-1]  # masks.npz now holds more pixels than described
    (out / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="corrupt class bank"):
        ClassBank.load(out)
    (out / "bank.json").write_text("{not json")
    with pytest.raises(DataError, match="corrupt class bank"):
        ClassBank.load(out)


def test_from_dataset_names_source_files(demo_root):
    dataset = open_dataset(demo_root, "train")
    bank = ClassBank.from_dataset(dataset, classes=["car", "pedestrian"], min_area=4)
    files = {r.image.name for r in dataset.records}
    segs = bank.segments("car")
    assert segs and all(s.source_file in files for s in segs)
    assert all(s.image_size == (32, 48) for s in segs)
