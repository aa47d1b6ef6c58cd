"""`synthlabel translate`: labels byte-equal to their sources, deterministic, resumable and atomic per sample like
`synth`, a readable dataset with the target conditions, label consistency from a real-data segmenter."""

from __future__ import annotations

import json

import pytest

from synthlabel.cli import main
from synthlabel.data import manifest
from synthlabel.data.datasets import open_dataset
from synthlabel.errors import DataError
from synthlabel.synth import translate as tr


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_labels_are_byte_equal_to_their_sources_and_the_set_reads_back(demo_root, tmp_path):
    source = open_dataset(demo_root, "train")
    out = tr.translate(source, tmp_path / "t", ["dusk", "fog"], k=2, seed=3)
    rows = manifest.rows(out)
    assert len(rows) == len(source) * 2 * 2
    ds = open_dataset(out, "train")
    assert [r.meta["condition"] for r in ds.records] == [row["condition"] for row in rows]
    by_name = {r.image.name: r for r in source.records}
    for row, record in zip(rows, ds.records, strict=True):
        assert record.mask.read_bytes() == by_name[row["source"]].mask.read_bytes()
        assert (ds.read_label(row["index"]) == source.read_label(row["map_index"])).all()
    assert {"dusk", "fog"} <= set(json.loads((out / "classes.json").read_text()).get("conditions", []))
    assert files(out) == files(tr.translate(source, tmp_path / "again", ["dusk", "fog"], k=2, seed=3))


def test_a_killed_translation_resumes_to_the_same_bytes(demo_root, tmp_path, monkeypatch):
    source = open_dataset(demo_root, "train")
    whole = files(tr.translate(source, tmp_path / "whole", ["night"]))
    calls = {"n": 0}
    real_append = manifest.append

    def dying_append(out_dir, entry):
        calls["n"] += 1
        if calls["n"] == 3:  # killed after two finished samples, with the third sample's files written
            raise KeyboardInterrupt
        real_append(out_dir, entry)

    monkeypatch.setattr(tr.manifest, "append", dying_append)
    with pytest.raises(KeyboardInterrupt):
        tr.translate(source, tmp_path / "cut", ["night"])
    monkeypatch.setattr(tr.manifest, "append", real_append)
    assert len(manifest.rows(tmp_path / "cut")) == 2
    assert files(tr.translate(source, tmp_path / "cut", ["night"])) == whole
    with pytest.raises(DataError, match="another synthesis"):
        tr.translate(source, tmp_path / "cut", ["night"], seed=9)


def test_unknown_conditions_and_class_maps_are_refused(demo_root, tmp_path):
    source = open_dataset(demo_root, "train")
    with pytest.raises(DataError, match="among dusk, night, fog, snow"):
        tr.translate(source, tmp_path / "x", ["rain"])
    with pytest.raises(DataError, match="among"):
        tr.translate(source, tmp_path / "x", ["dusk", "dusk"])
    with pytest.raises(DataError, match="unknown translation method"):
        tr.translate(source, tmp_path / "x", ["dusk"], method="cyclegan")


def test_cli_translate_with_label_consistency(demo_root, tmp_path, tiny_seg, capsys):
    seg = tmp_path / "seg"
    assert main(["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(seg)]) == 0
    out = tmp_path / "t"
    args = ["translate", "--data", str(demo_root), "--conditions", "dusk", "--segmenter", str(seg / "model")]
    assert main([*args, "--out", str(out)]) == 0
    assert "labels copied from the sources" in capsys.readouterr().out
    report = json.loads((out / tr.CONSISTENCY).read_text())
    assert set(report["per_sample"]) == {r["file"] for r in manifest.rows(out)}
    assert report["fidelity"] is None or report["fidelity"] >= 0
