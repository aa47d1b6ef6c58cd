"""`synthlabel experiment`: grid planning, per-arm configs, caching/resume, selection on validation, the report."""

from __future__ import annotations

import json

import pytest

from synthlabel import experiment as exp
from synthlabel.cli import main
from synthlabel.config import ExperimentConfig, apply_overrides, build_config
from synthlabel.data.toy import make_demo_dataset
from synthlabel.errors import ConfigError
from synthlabel.report.browser import chromium_path, render_check
from synthlabel.report.html import missing_references


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """A second demo dataset standing in for a synthetic one (same classes, other scenes)."""
    return make_demo_dataset(
        tmp_path_factory.mktemp("syn") / "data", n_train=8, n_val=0, n_test=4, size=(32, 48), seed=5
    )


def experiment_dict(demo_root, synth_root, out, tiny_seg) -> dict:
    seg = {}
    for item in tiny_seg(demo_root, steps=3):
        key, value = item.split("=", 1)
        seg = apply_overrides(seg, [f"{key}={value}"])
    return {
        **seg,
        "out": str(out),
        "seeds": [0, 1],
        "amounts": [0.5, 1.0],
        "arms": [
            {"name": "real_aug", "kind": "real_aug"},
            {"name": "copy_paste", "kind": "copy_paste"},
            {"name": "synth", "kind": "synthetic", "sources": [{"path": str(synth_root)}], "mix": {"fraction": 0.5}},
        ],
        "synthetic_test": {"path": str(synth_root), "split": "test"},
    }


def test_plan_and_arm_configs(demo_root, synth_root, tmp_path, tiny_seg):
    cfg = build_config(ExperimentConfig, experiment_dict(demo_root, synth_root, tmp_path, tiny_seg))
    runs = exp.plan(cfg)
    assert [r.key for r in runs][:2] == ["real_aug/a0_s0", "real_aug/a0_s1"]
    assert len(runs) == 2 + 2 + 2 * 2  # non-synthetic arms run at amount 0 only
    synth = [r for r in runs if r.arm.name == "synth"]
    seg = exp.arm_seg_config(cfg, synth[2], num_real=8)  # amount 1.0 -> 8 synthetic images
    assert seg.mix.sources[0].images == 8 and seg.mix.fraction == 0.5 and seg.train.seed == 0
    assert exp.arm_seg_config(cfg, synth[0], num_real=8).mix.sources[0].images == 4
    cp = exp.arm_seg_config(cfg, runs[2], num_real=8)
    assert cp.train.copy_paste.enabled and cp.train.augment.enabled and not cp.mix.sources
    assert exp.train_set_kind(synth[0].arm) == "mixed"


def test_config_errors_name_the_problem(demo_root, synth_root, tmp_path, tiny_seg):
    d = experiment_dict(demo_root, synth_root, tmp_path, tiny_seg)
    d["arms"].append({"name": "synth", "kind": "real"})
    with pytest.raises(ConfigError, match="distinct"):
        exp.check_config(build_config(ExperimentConfig, d))
    d["arms"][-1] = {"name": "nosrc", "kind": "synthetic"}
    with pytest.raises(ConfigError, match="lists no sources"):
        exp.check_config(build_config(ExperimentConfig, d))


def test_best_by_validation_uses_val_only():
    records = [
        {"group": "g", "arm": "a", "amount": 1.0, "val": {"miou": 0.5}, "metrics": {"miou": 0.9}},
        {"group": "g", "arm": "b", "amount": 1.0, "val": {"miou": 0.6}, "metrics": {"miou": 0.1}},
        {"group": "g", "arm": "b", "amount": 2.0, "val": {"miou": 0.55}, "metrics": {"miou": 0.9}},
        {"group": "h", "arm": "c", "amount": 0.0, "val": None, "metrics": {"miou": 0.3}},
    ]
    assert exp.best_by_validation(records) == {"g": ("b", 1.0), "h": ("c", 0.0)}


@pytest.mark.slow
def test_experiment_end_to_end_caches_and_reports(demo_root, synth_root, tmp_path, tiny_seg, monkeypatch):
    out = tmp_path / "exp"
    cfg_path = tmp_path / "exp.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(experiment_dict(demo_root, synth_root, out, tiny_seg)))
    assert main(["experiment", str(cfg_path)]) == 0
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(results) == 8 and {r["arm"] for r in results} == {"real_aug", "copy_paste", "synth"}
    assert all(set(r["eval"]) == {"real_test", "synthetic_test"} for r in results)
    for name in ("report.html", "report.md", "summary.csv", "deltas.csv", "sweep.csv", "cross_domain.csv"):
        assert (out / name).is_file(), name
    assert missing_references(out / "report.html") == []
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 3 and "Headline" in html and "real_aug" in html
    if chromium_path() is not None:  # `make test` installs Chromium where it can (Debian package)
        check = render_check(out / "report.html")
        assert check.ok and check.images_total >= 3, check
    md = (out / "report.md").read_text()
    assert "Amount sweep" in md and "synthetic_test" in md
    assert "## Per condition (test mIoU" in md  # the demo's test images hold several conditions
    assert all("per_condition" in r["eval"]["real_test"] for r in results)

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(exp, "train_segmenter", no_training)
    (out / "report.html").unlink()
    assert main(["experiment", str(cfg_path)]) == 0  # everything cached: only the report is rebuilt
    assert (out / "report.html").is_file()


def test_select_seeds_runs_only_the_validation_pick_on_every_seed(
    demo_root, synth_root, tmp_path, tiny_seg, monkeypatch
):
    d = experiment_dict(demo_root, synth_root, tmp_path, tiny_seg)
    d["seeds"], d["select_seeds"], d["amounts"] = [0, 1, 2], [0], [0.5, 1.0, 2.0]
    cfg = build_config(ExperimentConfig, d)
    val = {0.5: 0.3, 1.0: 0.5, 2.0: 0.4}  # amount 1 wins on validation

    def fake_run(cfg, spec, run_dir, num_real):
        v = val.get(spec.amount, 0.2)
        return {"arm": spec.arm.name, "group": spec.arm.name, "amount": spec.amount, "seed": spec.seed,
                "val": {"miou": v}}  # fmt: skip

    monkeypatch.setattr(exp, "run_one", fake_run)
    ran = [(r["arm"], r["amount"], r["seed"]) for r in exp.run_grid(cfg, exp.plan(cfg), tmp_path, 8)]
    synth = sorted(x for x in ran if x[0] == "synth")
    assert synth == [("synth", 0.5, 0), ("synth", 1.0, 0), ("synth", 1.0, 1), ("synth", 1.0, 2), ("synth", 2.0, 0)]
    assert sorted(x for x in ran if x[0] == "real_aug") == [("real_aug", 0.0, s) for s in (0, 1, 2)]


def test_experiment_on_data_without_val_split_carves_one_and_selects_on_it(synth_root, tmp_path, tiny_seg):
    """synth_root has no val split: the runner holds out part of train (said in the log), every run is scored on it,
    and the variant selection has validation figures to choose by."""
    d = experiment_dict(synth_root, synth_root, tmp_path / "exp", tiny_seg)
    d.update(seeds=[0], amounts=[1.0], synthetic_test=None)
    d["arms"] = [d["arms"][0]]
    exp.run_experiment(build_config(ExperimentConfig, d))
    held = (tmp_path / "exp" / "holdout" / "val.txt").read_text().split()
    assert len(held) == 2 and not set(held) & set((tmp_path / "exp" / "holdout" / "train.txt").read_text().split())
    (record,) = [json.loads(line) for line in (tmp_path / "exp" / "results.jsonl").read_text().splitlines()]
    assert record["val"] is not None and 0 <= record["val"]["miou"] <= 1
    assert "no 'val' split in" in (tmp_path / "exp" / "log.txt").read_text()
