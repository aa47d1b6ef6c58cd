"""`synthlabel cls-experiment` end to end at tiny size on load_digits: report, per-run results, resume."""

from __future__ import annotations

import json
from pathlib import Path

from synthlabel.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cls_digits.yaml"
TINY = [
    "runs=2",
    "synthetic_per_class=12",
    "generators.dcgan.steps=6",
    "generators.dcgan.snapshots=2",
    "generators.cgan.steps=6",
    "generators.cgan.width=8",
    "generators.cgan.snapshots=2",
    "selection.tstr_steps=5",
    "classifier.width=4",
    "classifier.epochs=4",
    "classifier.eval_every=2",
    "samples_per_class=3",
]


def _stamps(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.json") if "cache" not in p.parts}


def test_cls_experiment_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["cls-experiment", str(CONFIG), *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "baseline" in printed and "report.html" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["arms"]) == {"baseline", "noise", "dcgan", "dcgan_alternating", "dcgan_no_selection", "cgan",
                                    "baseline_aug", "cgan_aug"}  # fmt: skip
    for arm in summary["arms"].values():
        assert arm["runs"] == [0, 1] and [p["epoch"] for p in arm["curve"]] == [2, 4]
        assert 0 <= arm["final"]["mean"] <= 1 and arm["final"]["std"] is not None
    assert summary["arms"]["dcgan"]["gain"]["runs"] == 2 and summary["arms"]["baseline"]["gain"] is None
    record = json.loads((out / "r01" / "dcgan.json").read_text())
    assert record["train_images"] == 100 and record["eval_images"] == 1797 - 100
    assert (out / "r00" / "selection_cgan.json").is_file() and (out / "samples_dcgan.png").is_file()
    html = (out / "report.html").read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") >= 3 and 'src="http' not in html
    assert "| dcgan" in (out / "report.md").read_text()

    before = _stamps(out)
    assert main(["cls-experiment", str(CONFIG), *TINY, "--out", str(out)]) == 0
    after = _stamps(out)
    unchanged = {k for k in before if k.startswith("r0") and before[k] == after[k]}
    assert unchanged == {k for k in before if k.startswith("r0")}  # nothing retrained


def test_cls_experiment_dry_run_and_config_errors(tmp_path, capsys):
    assert main(["cls-experiment", str(CONFIG), "runs=1", "--dry-run"]) == 0
    assert "source: digits" in capsys.readouterr().out
    assert main(["cls-experiment", str(CONFIG), "arms.x.source=gan9", "--out", str(tmp_path / "o")]) == 2
    assert "arms.x.source" in capsys.readouterr().err
    assert main(["cls-experiment", str(CONFIG), "generators.dcgan.stepz=3", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_mnist_config_matches_the_benchmark():
    """configs/cls_mnist.yaml is the benchmark's study as one command: same settings, same arms."""
    import importlib.util
    import sys

    from synthlabel.cls.config import ClsExperimentConfig
    from synthlabel.config import load_config, to_dict

    bench = CONFIG.parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("mnist_fewshot", bench / "mnist_fewshot.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(bench))
    from_yaml = load_config(ClsExperimentConfig, CONFIG.parent / "cls_mnist.yaml")
    assert to_dict(from_yaml) == to_dict(module.config())


def test_cls_experiment_on_class_folders_with_a_test_tree(tmp_path, make_blobs, capsys):
    from PIL import Image

    for split, seed in (("train", 0), ("test", 1)):
        data = make_blobs(per_class=4, num_classes=3, size=8, seed=seed)
        for i, (image, label) in enumerate(zip(data.images, data.labels, strict=True)):
            folder = tmp_path / split / data.class_names[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    overrides = [*TINY, "runs=1", "data.source=folders", f"data.path={tmp_path / 'train'}",
                 f"data.test_path={tmp_path / 'test'}", "data.n_per_class=2", "arms={}",
                 "arms.base.source=real", "arms.gan.source=dcgan"]  # fmt: skip
    out = tmp_path / "study"
    assert main(["cls-experiment", str(CONFIG), *overrides, "--out", str(out)]) == 0
    record = json.loads((out / "r00" / "gan.json").read_text())
    assert record["train_images"] == 6 and record["eval_images"] == 12  # the separate test tree
    assert main(["cls-experiment", str(CONFIG), "data.source=folders", "--out", str(out / "x")]) == 2
    assert "data.path is required" in capsys.readouterr().err
