"""train-gen -> bank -> synth (original + recomposed) -> fidelity -> filter, end to end on tiny demo data."""

import json

from synthlabel.cli import main
from synthlabel.data.datasets import check_dataset, open_dataset


def test_train_gen_synth_fidelity_filter(demo_root, tmp_path, capsys, tiny_seg):
    gen = tmp_path / "gen"
    assert (
        main(
            [
                "train-gen",
                f"data.path={demo_root}",
                "data.size=[32, 48]",
                "model.width=8",
                "train.steps=2",
                "train.batch_size=2",
                "train.sample_every=2",
                "--out",
                str(gen),
            ]
        )
        == 0
    )
    assert (gen / "model" / "G.safetensors").is_file() and list((gen / "samples").glob("*.png"))
    assert main(["bank", str(demo_root), "--classes", "pedestrian,pole", "--out", str(tmp_path / "bank")]) == 0
    synth = tmp_path / "synth"
    assert (
        main(
            [
                "synth",
                str(gen / "model"),
                "--data",
                str(demo_root),
                "--out",
                str(synth),
                "--maps",
                "both",
                "--bank",
                str(tmp_path / "bank"),
                "--min-fraction",
                "pedestrian=3%",
                "pole=0.03",
                "--conditions",
                "day,night",
            ]
        )
        == 0
    )
    ds = open_dataset(synth, "train")
    assert len(ds) == 2 * 2 * 8  # (original + recomposed) x 2 conditions x 8 train maps
    assert {r.meta["condition"] for r in ds.records} == {"day", "night"}
    assert check_dataset(synth).ok
    manifest = [json.loads(line) for line in (synth / "manifest.jsonl").read_text().splitlines()]
    assert any(m["ops"] for m in manifest) and all(m["generator_hash"] for m in manifest)
    seg = tmp_path / "seg"
    assert main(["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(seg)]) == 0
    assert main(["fidelity", str(seg / "model"), "--synth", str(synth), "--real", str(demo_root)]) == 0
    report = json.loads((synth / "fidelity.json").read_text())
    assert 0 <= report["synthetic_miou"] <= 1 and len(report["per_sample"]) == len(ds)
    assert main(["filter", str(synth), "--scores", str(synth / "fidelity.json"), "--keep-fraction", "0.5"]) == 0
    kept = (synth / "keep.txt").read_text().split()
    assert len(kept) == len(ds) // 2
    assert "works as data.subset.file" in capsys.readouterr().out
