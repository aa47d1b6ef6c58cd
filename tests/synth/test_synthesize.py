"""Synthesis into a dataset on disk: deterministic, resumable, no half-written samples, readable by synthlabel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import synthlabel.generators  # noqa: F401  (registers the generators)
from synthlabel import check_dataset, open_dataset
from synthlabel.checkpoint import model_hash
from synthlabel.data.layouts import cityscapes_spec
from synthlabel.data.manifest import MANIFEST
from synthlabel.data.toy import DEMO_CONDITIONS, demo_spec, make_demo_dataset, sample_scene
from synthlabel.errors import DataError
from synthlabel.generators.io import save_generator
from synthlabel.registry import GENERATORS
from synthlabel.synth.recompose import Recomposed
from synthlabel.synth.synthesize import (
    LabelSource,
    SynthesizeConfig,
    label_sources_from_dataset,
    label_sources_from_recomposed,
    synthesize,
    synthesize_from_config,
)

SIZE = (32, 48)
KWARGS = dict(num_classes=8, num_conditions=4, width=8, image_size=SIZE)


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    generator = GENERATORS.create("spade", **KWARGS)
    path = tmp_path_factory.mktemp("gen") / "model"
    return save_generator(path, "spade", KWARGS, generator, demo_spec(), list(DEMO_CONDITIONS))


@pytest.fixture(scope="module")
def sources() -> list[LabelSource]:
    maps = [sample_scene(seed, SIZE).label for seed in range(2)]
    maps.append(sample_scene(2, (64, 96)).label)  # another size: resized (nearest) to the generator's
    ops = [{"op": "insert", "class": 6, "bbox": np.array([1, 2, 3, 4]), "scale": np.float32(1.5)}]
    return [LabelSource(maps[0], "a.png"), LabelSource(maps[1], "b.png", ops), LabelSource(maps[2], "c.png")]


def run(generator_dir, sources, out, **kw) -> Path:
    args = dict(conditions=["day", "night"], k=2, seed=7, batch_size=4) | kw
    return synthesize(generator_dir, sources, out, **args)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sample_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in files(root).items() if k.endswith(".png")}


def manifest(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / MANIFEST).read_text().splitlines()]


def test_synthesis_is_deterministic_and_loads_as_a_dataset(generator_dir, sources, tmp_path):
    a = run(generator_dir, sources, tmp_path / "a")
    b = run(generator_dir, sources, tmp_path / "b")
    assert files(a) == files(b)
    assert len(sample_files(a)) == 2 * 3 * 2 * 2  # image + mask per (map, condition, render)
    ds = open_dataset(a, "train")
    assert len(ds) == 12 and ds.layout == "camvid"
    assert [r.meta["condition"] for r in ds.records[:4]] == ["day", "day", "night", "night"]
    assert all(r.meta["sequence"] == f"map{i // 4:06d}" for i, r in enumerate(ds.records))
    assert not any(c in r.image.name for r in ds.records for c in DEMO_CONDITIONS)
    report = check_dataset(a)
    assert report.ok, report.problems
    assert report.counts["train"] == {"day": 6, "night": 6}
    big = Image.fromarray(sources[2].label_map.astype(np.uint8)).resize(SIZE[::-1], Image.NEAREST)
    expected = [sources[0].label_map, sources[1].label_map, np.asarray(big)]
    for i in range(len(ds)):  # the mask is the map the image was rendered from, at the generator's size
        np.testing.assert_array_equal(ds.read_label(i), expected[i // 4])
    images = [np.asarray(Image.open(r.image)) for r in ds.records[:4]]
    assert not np.array_equal(images[0], images[1])  # K renders of one map differ (own noise)
    other = run(generator_dir, sources, tmp_path / "c", seed=8)
    assert sample_files(other) != sample_files(a)


def test_manifest_records_provenance(generator_dir, sources, tmp_path):
    out = run(generator_dir, sources, tmp_path / "out")
    rows = manifest(out)
    assert [r["index"] for r in rows] == list(range(12))
    first, inserted = rows[0], rows[4]
    assert first["source"] == "a.png" and first["ops"] == [] and first["condition"] == "day"
    assert inserted["source"] == "b.png" and inserted["ops"][0]["bbox"] == [1, 2, 3, 4]
    assert inserted["ops"][0]["scale"] == 1.5
    assert all(r["generator_hash"] == model_hash(generator_dir) for r in rows)
    # renders of one map share their noise across conditions, and differ between renders
    assert rows[0]["seed"] == rows[2]["seed"] != rows[1]["seed"]
    assert json.loads((out / "classes.json").read_text())["num_classes"] == 8


def demo_root_copy(tmp_path: Path) -> Path:
    return make_demo_dataset(tmp_path / "real", n_train=1, n_val=0, n_test=0, size=SIZE)


class Stop(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_bytes_without_touching_finished_samples(generator_dir, sources, tmp_path):
    full = run(generator_dir, sources, tmp_path / "full")

    def stop_after_five(index: int) -> None:
        if index == 4:
            raise Stop

    out = tmp_path / "out"
    with pytest.raises(Stop):
        run(generator_dir, sources, out, on_sample=stop_after_five)
    assert len(manifest(out)) == 5
    assert len(open_dataset(out, "train")) == 5  # what is on disk is whole samples only
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    run(generator_dir, sources, out)
    assert files(out) == files(full)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "train").glob("*") if p.name in finished} == finished


def test_half_written_sample_and_torn_manifest_line_are_redone(generator_dir, sources, tmp_path):
    out = run(generator_dir, sources, tmp_path / "out")
    expected = files(out)
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    (out / MANIFEST).write_text("".join(lines[:-1]) + lines[-1][:25])  # killed while appending the last line
    (out / "train" / "synth_000011.png").unlink()  # ... or after writing the mask only
    before = (out / "train" / "synth_000000.png").stat().st_mtime_ns
    run(generator_dir, sources, out)
    assert files(out) == expected
    assert (out / "train" / "synth_000000.png").stat().st_mtime_ns == before


def test_other_settings_into_the_same_folder_or_unknown_conditions_are_errors(generator_dir, sources, tmp_path):
    out = run(generator_dir, sources, tmp_path / "out")
    with pytest.raises(DataError, match="another synthesis"):
        run(generator_dir, sources, out, seed=1)
    with pytest.raises(DataError, match="another synthesis"):
        run(generator_dir, sources, out, split="val")  # one synthesis (one split) per folder
    with pytest.raises(DataError, match="did not write"):
        run(generator_dir, sources, demo_root_copy(tmp_path))
    with pytest.raises(DataError, match="19 Cityscapes classes"):
        run(generator_dir, sources, tmp_path / "z", layout="cityscapes")
    with pytest.raises(DataError, match="does not know conditions"):
        run(generator_dir, sources, tmp_path / "x", conditions=["rain"])
    bad = [LabelSource(np.full(SIZE, 9, np.int64), "bad.png")]
    with pytest.raises(DataError, match="bad.png"):
        run(generator_dir, bad, tmp_path / "y")
    kwargs = {"num_classes": 3, "channels": 1, "image_size": [8, 8], "width": 4, "z_dim": 8}
    class_gen = save_generator(tmp_path / "cgan", "cgan", kwargs, GENERATORS.create("cgan", **kwargs))
    with pytest.raises(DataError, match="not on label maps"):
        run(class_gen, sources, tmp_path / "y")
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_folders_layout_and_label_sources_from_a_dataset(generator_dir, demo_root, tmp_path):
    ds = open_dataset(demo_root, "train")
    real = label_sources_from_dataset(ds)
    assert [s.source for s in real] == [r.image.name for r in ds.records]
    recomposed = [Recomposed(real[1].label_map.copy(), [{"op": "mix", "partner": 0}], 1)]
    made = label_sources_from_recomposed(recomposed, ds)
    assert made[0].source == ds.records[1].image.name and made[0].ops == [{"op": "mix", "partner": 0}]
    with pytest.raises(DataError, match="pass the dataset"):
        label_sources_from_recomposed([Recomposed(real[0].label_map, [], 99)], ds)
    cfg = SynthesizeConfig(generator=str(generator_dir), maps="both", conditions=["dusk"], layout="folders")
    out = synthesize_from_config(cfg, ds.subset([0, 1]), tmp_path / "folders", recomposed)
    synth = open_dataset(out, "train")
    assert synth.layout == "folders" and len(synth) == 3
    assert {r.meta["condition"] for r in synth.records} == {"dusk"}
    assert check_dataset(out).ok


def test_cityscapes_layout_stores_label_ids_and_unconditioned_renders(tmp_path):
    kwargs = dict(num_classes=19, num_conditions=0, width=8, image_size=SIZE)
    torch.manual_seed(0)
    gen = save_generator(tmp_path / "g", "spade", kwargs, GENERATORS.create("spade", **kwargs), cityscapes_spec(), [])
    label = np.random.default_rng(0).integers(0, 19, SIZE)
    label[:3] = 255
    out = synthesize(gen, [LabelSource(label, "x.png")], tmp_path / "cs", [], k=2, seed=0, layout="cityscapes")
    ds = open_dataset(out, "train")
    assert ds.layout == "cityscapes" and len(ds) == 2
    np.testing.assert_array_equal(ds.read_label(1), label)  # trainIds -> labelIds on disk -> trainIds again
    assert {r.meta["condition"] for r in ds.records} == {""} and check_dataset(out).ok


def test_own_condition_renders_each_map_as_its_real_twin(generator_dir, demo_root, tmp_path):
    ds = open_dataset(demo_root, "train")
    real = label_sources_from_dataset(ds)
    assert [s.condition for s in real] == [r.meta["condition"] for r in ds.records]
    out = synthesize(generator_dir, real, tmp_path / "own", conditions=["own"], k=1, seed=0)
    synth = open_dataset(out, "train")
    assert [r.meta["condition"] for r in synth.records] == [s.condition for s in real]
    recomposed = label_sources_from_recomposed([Recomposed(real[2].label_map.copy(), [], 2)], ds)
    assert recomposed[0].condition == real[2].condition
    with pytest.raises(DataError, match="own"):
        synthesize(generator_dir, [LabelSource(real[0].label_map, "x.png")], tmp_path / "none", ["own"], 1, 0)
