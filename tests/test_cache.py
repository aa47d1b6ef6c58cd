"""The fingerprinted cache: a config change re-runs what it changes and nothing else; `--resume` with a changed
config stops with an error naming the keys and leaves the run directory as it was."""

from __future__ import annotations

import json

import pytest
import yaml

from synthlabel import cache
from synthlabel import experiment as exp
from synthlabel.cli import main
from synthlabel.errors import ConfigError


def test_fingerprint_ignores_key_order_and_sees_values():
    assert cache.fingerprint({"a": 1, "b": [1, 2]}) == cache.fingerprint({"b": [1, 2], "a": 1})
    assert cache.fingerprint({"a": 1}) != cache.fingerprint({"a": 2})


def test_config_diff_names_nested_added_and_removed_keys():
    old = {"train": {"steps": 4, "lr": 0.1}, "model": {"width": 8}, "gone": 1}
    new = {"train": {"steps": 8, "lr": 0.1}, "model": {"width": 8}, "extra": {"x": 1}}
    assert cache.config_diff(old, new) == ["extra", "gone", "train.steps"]
    assert cache.config_diff(old, old) == []


def test_claim_keeps_matching_work_and_clears_stale(tmp_path):
    d = tmp_path / "cell"
    assert cache.claim(d, "k1") is False  # new: stamped, nothing to reuse
    (d / "partial.txt").write_text("work of k1")
    assert cache.claim(d, "k1") is True and (d / "partial.txt").is_file()
    assert cache.claim(d, "k2") is False and not (d / "partial.txt").exists()
    assert cache.read_stamp(d) == "k2"


def test_read_record_only_returns_a_matching_fingerprint(tmp_path):
    path = tmp_path / "result.json"
    cache.write_record(path, "abc", {"miou": 0.5})
    assert cache.read_record(path, "abc")["miou"] == 0.5
    assert cache.read_record(path, "other") is None
    path.write_text("{torn")
    assert cache.read_record(path, "abc") is None


def _small_experiment(demo_root, out, tiny_seg) -> dict:
    seg = {}
    for item in tiny_seg(demo_root, steps=2):
        key, value = item.split("=", 1)
        node = seg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    arms = [{"name": "real_aug", "kind": "real_aug"}, {"name": "copy_paste", "kind": "copy_paste"}]
    return {**seg, "out": str(out), "seeds": [0], "arms": arms}


@pytest.mark.slow
def test_editing_one_arm_retrains_only_that_arm(demo_root, tmp_path, tiny_seg, monkeypatch):
    out, cfg_path = tmp_path / "exp", tmp_path / "exp.yaml"
    d = _small_experiment(demo_root, out, tiny_seg)
    cfg_path.write_text(yaml.safe_dump(d))
    trained: list[str] = []
    real_train = exp.train_segmenter

    def recording(cfg, run_dir, **kwargs):
        trained.append(f"{run_dir.parent.name}/{run_dir.name}")
        return real_train(cfg, run_dir, **kwargs)

    monkeypatch.setattr(exp, "train_segmenter", recording)
    assert main(["experiment", str(cfg_path)]) == 0
    assert sorted(trained) == ["copy_paste/a0_s0", "real_aug/a0_s0"]
    before = json.loads((out / "runs/real_aug/a0_s0/result.json").read_text())

    trained.clear()
    d["arms"][1]["overrides"] = ["train.copy_paste.max_pastes=1"]  # one key of one arm
    cfg_path.write_text(yaml.safe_dump(d))
    assert main(["experiment", str(cfg_path)]) == 0
    assert trained == ["copy_paste/a0_s0"]  # the unaffected arm is read from the cache
    assert json.loads((out / "runs/real_aug/a0_s0/result.json").read_text()) == before

    trained.clear()
    d["train"]["steps"] = 3  # a shared key changes every arm
    cfg_path.write_text(yaml.safe_dump(d))
    assert main(["experiment", str(cfg_path)]) == 0
    assert sorted(trained) == ["copy_paste/a0_s0", "real_aug/a0_s0"]
    assert json.loads((out / "runs/real_aug/a0_s0/result.json").read_text())["steps"] == 3


def test_resume_with_a_changed_key_names_it_and_keeps_the_config(demo_root, tmp_path, tiny_seg, capsys):
    out = tmp_path / "seg"
    args = ["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]
    assert main(args) == 0
    recorded = (out / "config.yaml").read_text()
    assert main([*args[:-2], "model.width=16", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "model.width" in err and "8 -> 16" in err
    assert (out / "config.yaml").read_text() == recorded  # the run dir still describes the model it holds
    changed = yaml.safe_load(recorded)
    changed["train"]["steps"] = 9
    with pytest.raises(ConfigError, match="train.steps"):
        cache.check_resume(out, changed)
