"""The command line end to end on the demo data at tiny size, and its error handling."""

import importlib.metadata
import json
import subprocess
import sys

import pytest

from synthlabel.cli import main


def test_demo_pipeline_end_to_end_and_skips_finished_stages(tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "run",
        "configs/demo.yaml",
        f"out={out}",
        "demo.n_train=6",
        "demo.n_val=3",
        "demo.n_test=3",
        "demo.size=[32, 48]",
        "data.size=[32, 48]",
        "model.width=8",
        "model.depth=3",
        "train.steps=3",
        "train.batch_size=2",
        "train.warmup_steps=1",
        "train.eval_every=2",
        "generator.model.width=8",
        "generator.train.steps=2",
        "generator.train.batch_size=2",
        "generator.train.sample_every=2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"outputs in {out}" in printed and "test mIoU" in printed
    for name in (
        "config.yaml",
        "data/classes.json",
        "data/meta.csv",
        "analysis_before/analysis.json",
        "segmenter/model/config.json",
        "eval_test.json",
        "eval_val.json",
        "analysis/frequency_vs_iou.png",
        "summary.md",
        "generator/model/config.json",
        "bank/bank.json",
        "synth_original/manifest.jsonl",
        "synth_recomposed/keep.txt",
        "experiment/report.html",
        "experiment/runs/synthetic_recomposed/a1_s0/result.json",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "eval_val.json").read_text())["split"] == "val"  # recomposition aims by val IoU
    assert not (out / "holdout").exists()  # the data has a val split: nothing is carved from train
    summary = (out / "summary.md").read_text()
    assert "Gain of synthetic data" in summary and "synthetic_recomposed" in summary
    arms = {json.loads(line)["arm"] for line in (out / "experiment" / "results.jsonl").read_text().splitlines()}
    assert arms == {"real_aug", "copy_paste", "synthetic_original", "synthetic_recomposed"}
    recomposed = [json.loads(line) for line in (out / "synth_recomposed" / "manifest.jsonl").read_text().splitlines()]
    assert any(op["op"] == "insert" for r in recomposed for op in r["ops"])
    analysis = json.loads((out / "analysis" / "analysis.json").read_text())
    assert len(analysis["rows"]) == 8 and analysis["rows"][0]["iou"] is not None
    mtime = (out / "segmenter" / "model" / "model.safetensors").stat().st_mtime
    assert main(args) == 0  # a second run skips every stage
    assert (out / "segmenter" / "model" / "model.safetensors").stat().st_mtime == mtime
    log_text = (out / "log.txt").read_text()
    assert "real_aug/a0_s0: reusing" in log_text
    assert "[skip] train segmenter" in log_text and "[skip] train generator" in log_text


def test_stage_commands(demo_root, tmp_path, capsys, tiny_seg):
    assert main(["check-data", str(demo_root)]) == 0
    printed = capsys.readouterr().out
    assert "0 problem(s) found" in printed and "pedestrian" in printed and "| train" in printed
    assert main(["subset", str(demo_root), "--n", "3", "--out", str(tmp_path / "s.txt")]) == 0
    run = tmp_path / "seg"
    assert (
        main(["train-seg", *tiny_seg(demo_root, steps=2), f"data.subset.file={tmp_path / 's.txt'}", "--out", str(run)])
        == 0
    )
    assert (run / "subset.txt").read_text() == (tmp_path / "s.txt").read_text()
    assert main(["eval-seg", str(run / "model"), "--data", str(demo_root), "--split", "val"]) == 0
    assert (run / "model" / "eval_val.json").is_file()
    assert main(["analyze", str(demo_root), "--model", str(run / "model"), "--out", str(tmp_path / "an")]) == 0
    assert "Spearman" in capsys.readouterr().out


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["train-seg", "train.stepz=3", "--out", str(tmp_path / "r")]) == 2
    assert "train.stepz" in capsys.readouterr().err
    assert main(["eval-seg", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "not a synthlabel model directory" in capsys.readouterr().err
    (tmp_path / "ds").mkdir()
    assert main(["check-data", str(tmp_path / "ds")]) == 2
    assert "unknown dataset layout" in capsys.readouterr().out


def test_python_dash_m_and_the_console_script_run_this_main():
    (script,) = importlib.metadata.entry_points(group="console_scripts", name="synthlabel")
    assert script.load() is main
    done = subprocess.run([sys.executable, "-m", "synthlabel", "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "cls-experiment" in done.stdout and "check-data" in done.stdout


def test_dry_run_prints_resolved_config(capsys):
    assert main(["train-seg", "train.steps=7", "--dry-run"]) == 0
    assert "steps: 7" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["no-such-command"])
