"""Recomposition: targets reached on demo scenes, only bank classes inserted at learned positions and scales,
occlusion by nearer objects, region mixing, determinism, recorded ops, and target parsing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthlabel.data.datasets import open_dataset
from synthlabel.data.toy import CAR, PEDESTRIAN, POLE, ROAD, SIDEWALK, SKY
from synthlabel.errors import ConfigError, DataError
from synthlabel.eval.distribution import label_statistics
from synthlabel.synth.class_bank import ClassBank
from synthlabel.synth.recompose import (
    class_fractions,
    insert_segment,
    mix_maps,
    occlusion_depth,
    recompose,
    recompose_dataset,
)
from synthlabel.synth.targets import Targets

IGNORE = 255


@pytest.fixture(scope="module")
def raised(demo_maps, demo_bank, spec):
    """The demo maps recomposed to at least 3% pedestrian and 3% pole pixels."""
    targets = Targets.min_fraction({"pedestrian": 0.03, "pole": "3%"}, spec)
    return recompose(demo_maps, demo_bank, targets, rng_seed=0)


def test_reaches_requested_class_fractions(demo_maps, raised, spec):
    before = class_fractions(demo_maps, spec.num_classes, IGNORE)
    after = class_fractions([r.label_map for r in raised], spec.num_classes, IGNORE)
    assert before[PEDESTRIAN] < 0.02 and before[POLE] < 0.02
    assert after[PEDESTRIAN] >= 0.03 and after[POLE] >= 0.03
    stats = label_statistics([r.label_map for r in raised], spec.num_classes, IGNORE)
    assert stats["pixel_frequency"] == pytest.approx(list(after))
    assert len(raised) == len(demo_maps) and [r.source for r in raised] == list(range(len(demo_maps)))


def test_only_changes_pixels_to_inserted_bank_classes(demo_maps, spec):
    bank = ClassBank.build(demo_maps, spec, classes=["pedestrian", "pole"])
    out = recompose(demo_maps, bank, Targets.min_fraction({PEDESTRIAN: 0.02, POLE: 0.02}), rng_seed=1)
    changed = 0
    for r in out:
        diff = r.label_map != demo_maps[r.source]
        assert set(np.unique(r.label_map[diff]).tolist()) <= {PEDESTRIAN, POLE}
        assert {op["class_id"] for op in r.ops} <= {PEDESTRIAN, POLE}
        changed += int(diff.sum())
    assert changed > 0
    with pytest.raises(DataError, match="no insertable segments"):
        recompose(demo_maps, bank, Targets.min_fraction({CAR: 0.1}))


def test_inserts_follow_learned_position_and_support(demo_bank, raised, spec):
    inserts = [op for r in raised for op in r.ops if op["op"] == "insert"]
    assert len(inserts) > 50
    for op in inserts:
        st = demo_bank.stats(op["class_id"])
        assert st.bottom_y_quantile(0.01) - 0.02 <= op["bottom_y"] <= st.bottom_y_quantile(0.99) + 0.02
        assert 1 / 1.5 <= op["scale"] <= 1.5
    supported = 0
    for r in raised:
        original = r.label_map  # check each op's footing in its final map; later inserts may cover a few
        for op in (o for o in r.ops if o["op"] == "insert"):
            y0, x0, y1, x1 = op["bbox"]
            below = original[y1 : y1 + 2, x0:x1] if y1 < original.shape[0] else original[-1:, x0:x1]
            supported += np.isin(below, [ROAD, SIDEWALK]).mean() >= 0.5
    assert supported >= 0.9 * len(inserts)


def test_insert_scale_follows_height_relation(demo_maps, demo_bank):
    rng = np.random.default_rng(3)
    st = demo_bank.stats(PEDESTRIAN)
    whole = [s for s in demo_bank.segments(PEDESTRIAN) if s.whole and s.support_class in (ROAD, SIDEWALK)]
    done = 0
    for i, segment in enumerate(whole[:10]):
        result = insert_segment(demo_maps[i], segment, demo_bank, rng)
        if result is None:
            continue
        _, op = result
        y0, _, y1, _ = op["bbox"]
        expected = st.height_at(op["bottom_y"]) * 64
        assert 0.7 * expected - 1.5 <= y1 - y0 <= 1.4 * expected + 1.5
        done += 1
    assert done >= 5


def test_never_paints_over_nearer_objects(demo_maps, demo_bank):
    rng = np.random.default_rng(0)
    painted = 0
    for i in range(20):
        label_map = demo_maps[i]
        depth = occlusion_depth(label_map, demo_bank.ground_classes, IGNORE)
        pool = demo_bank.segments(PEDESTRIAN if i % 2 else POLE)
        result = insert_segment(label_map, pool[i % len(pool)], demo_bank, rng, depth=depth)
        if result is None:
            continue
        new_map, op = result
        changed = new_map != label_map
        assert (depth[changed] <= op["bbox"][2]).all()
        painted += int(changed.sum())
    assert painted > 0


def occlusion_bank(spec) -> ClassBank:
    """Pedestrians 6x2 standing on road at bottom_y 0.75 in 40x40 maps: sky above row 20, road below."""
    maps = []
    for x in range(4, 36, 4):
        m = np.full((40, 40), ROAD, np.int64)
        m[:20] = SKY
        m[24:30, x : x + 2] = PEDESTRIAN
        maps.append(m)
    return ClassBank.build(maps, spec, min_area=4)


@pytest.mark.parametrize("car_bottom, visible", [(36, False), (26, True)])
def test_occlusion_by_bottom_edge(spec, car_bottom, visible):
    bank = occlusion_bank(spec)
    scene = np.full((40, 40), ROAD, np.int64)
    scene[:20] = SKY
    scene[10:car_bottom] = CAR  # a wall of car across the image, nearer or farther than a new pedestrian
    scene[:, :1] = IGNORE
    rng = np.random.default_rng(0)
    result = insert_segment(scene, bank.segments(PEDESTRIAN)[0], bank, rng, min_support=0.0, min_context=0.0)
    assert (result is not None) == visible
    if visible:
        new_map, op = result
        assert op["bottom_y"] == pytest.approx(0.75) and (new_map == PEDESTRIAN).sum() == 12
        assert (new_map[:, 0] == IGNORE).all()


def test_occlusion_depth_is_local_to_each_column(spec):
    m = np.full((10, 12), SKY, np.int64)
    m[6:, :] = ROAD
    m[2:6, 0:2] = CAR  # bottom at row 6
    for x in range(4, 12):  # a facade receding to the right: its bottom rises by one row every 2 columns
        m[1 : 9 - x // 2, x] = 1
    m[0, 11] = IGNORE
    depth = occlusion_depth(m, ground=(ROAD,), ignore_index=IGNORE)
    assert (depth[2:6, 0:2] == 6).all() and (depth[m == ROAD] == -1).all() and depth[0, 11] > 100
    assert depth[3, 4] > depth[3, 10]


def test_maps_that_cannot_host_a_class_are_made_up_for(demo_maps, demo_bank, spec):
    sky_only = np.full(demo_maps[0].shape, SKY, np.int64)  # nothing to stand on: no pedestrian fits here
    maps = demo_maps[:5] + [sky_only] * 3
    out = recompose(maps, demo_bank, Targets.min_fraction({"pedestrian": 0.03}, spec), rng_seed=0)
    assert class_fractions([r.label_map for r in out], spec.num_classes, IGNORE)[PEDESTRIAN] >= 0.03
    assert all(r.ops == [] for r in out[5:])


def test_determinism_and_ops(demo_maps, demo_bank, raised, spec):
    targets = Targets.min_fraction({"pedestrian": 0.03, "pole": 0.03}, spec)
    again = recompose(demo_maps, demo_bank, targets, rng_seed=0)
    assert all(np.array_equal(a.label_map, b.label_map) and a.ops == b.ops for a, b in zip(raised, again, strict=True))
    other = recompose(demo_maps[:6], demo_bank, targets, rng_seed=5)
    assert any(not np.array_equal(a.label_map, b.label_map) for a, b in zip(raised, other, strict=False))
    for r in raised:
        json.dumps(r.ops, allow_nan=False)
        assert (r.ops == []) == np.array_equal(r.label_map, demo_maps[r.source])
        for op in r.ops:
            segment = demo_bank.segments(op["class_id"])[op["segment_index"]]
            assert op["class"] == spec.names[op["class_id"]] and op["segment"]["bbox"] == list(segment.bbox)
            assert op["pixels"] > 0 and op["scale"] > 0


def test_recompose_dataset_recomposes_the_split_maps_in_record_order(demo_root, tmp_path):
    ds = open_dataset(demo_root, "train")
    bank = ClassBank.from_dataset(ds)
    targets = Targets.from_iou({name: 0.5 for name in ds.out_spec.names}, ds.out_spec, 0.1)
    made = recompose_dataset(ds, bank, targets, n_out=5, seed=3, mix_prob=0.5, ops_file=tmp_path / "ops.jsonl")
    direct = recompose([ds.read_label(i) for i in range(len(ds))], bank, targets, 3, n_out=5, mix_prob=0.5)
    assert len(made) == 5 and any(m.ops for m in made)
    for a, b in zip(made, direct, strict=True):
        np.testing.assert_array_equal(a.label_map, b.label_map)
        assert (a.ops, a.source) == (b.ops, b.source)
    assert [json.loads(line) for line in (tmp_path / "ops.jsonl").read_text().splitlines()] == [m.ops for m in made]


def test_mix_maps_keeps_ids_of_its_inputs(demo_maps):
    rng = np.random.default_rng(0)
    a, b = demo_maps[0], demo_maps[1].copy()
    b[b == SKY] = IGNORE
    out, op = mix_maps(a, b, rng)
    cut = op["cut_x"]
    assert 96 // 4 <= cut <= 3 * 96 // 4 and out.shape == a.shape
    left, right = (a, b) if op["left"] == "a" else (b, a)
    assert np.array_equal(out[:, :cut], left[:, :cut]) and np.array_equal(out[:, cut:], right[:, cut:])
    assert set(np.unique(out)) <= set(np.unique(a)) | set(np.unique(b))
    with pytest.raises(DataError, match="shapes"):
        mix_maps(a, a[:, :10], rng)


def test_recompose_mixes_with_a_partner(demo_maps, demo_bank, spec):
    targets = Targets.min_fraction({"pedestrian": 0.01}, spec)
    out = recompose(demo_maps[:5], demo_bank, targets, rng_seed=2, n_out=7, mix_prob=1.0)
    assert len(out) == 7 and [r.source for r in out] == [0, 1, 2, 3, 4, 0, 1]
    for r in out:
        assert r.ops[0]["op"] == "mix" and r.ops[0]["partner"] != r.source


def test_targets_from_iou_weight_by_one_minus_iou(spec):
    iou = {"sky": 0.9, "car": 0.7, "pedestrian": 0.4, "pole": 0.1, "tree": None}
    targets = Targets.from_iou(iou, spec, total_boost=0.1)
    base = np.full(spec.num_classes, 0.01)
    goal = targets.resolve(base, insertable=(SKY, PEDESTRIAN, POLE, 4), spec=spec)  # car cannot be inserted
    extra = {c: g - 0.01 for c, g in goal.items()}
    assert set(goal) == {SKY, PEDESTRIAN, POLE} and sum(extra.values()) == pytest.approx(0.1)
    assert extra[POLE] / extra[PEDESTRIAN] == pytest.approx(0.9 / 0.6)
    assert extra[PEDESTRIAN] / extra[SKY] == pytest.approx(0.6 / 0.1)


def test_targets_from_yaml(spec, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"per_class_iou": {"pole": 0.2, "pedestrian": 0.6}}))
    path = tmp_path / "targets.yaml"
    path.write_text("min_fraction: {pedestrian: 3%, 7: 0.02}\niou_file: metrics.json\ntotal_boost: 0.05\n")
    targets = Targets.from_yaml(path, spec)
    assert targets.minimum == {PEDESTRIAN: 0.03, POLE: 0.02}
    assert targets.boost_weights == pytest.approx({POLE: 0.8, PEDESTRIAN: 0.4}) and targets.total_boost == 0.05
    path.write_text("min_fractoin: {pedestrian: 0.03}\n")
    with pytest.raises(ConfigError, match="unknown target keys"):
        Targets.from_yaml(path, spec)
    with pytest.raises(ConfigError, match="unknown class name"):
        Targets.from_dict({"min_fraction": {"unicorn": 0.1}}, spec)
    with pytest.raises(ConfigError, match="not a share"):
        Targets.from_dict({"min_fraction": {"pole": 1.5}}, spec)
