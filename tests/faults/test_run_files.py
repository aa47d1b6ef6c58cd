"""Run-directory files after a crash or a refused resume: a torn last metrics line is dropped (never blocks a
resume), metrics are appended in one O_APPEND write each, and a refused --resume leaves config.yaml as it was."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from synthlabel import checkpoint as ckpt
from synthlabel.cli import main
from synthlabel.errors import StateError
from synthlabel.runs import Run


def test_torn_last_metrics_line_is_dropped(tmp_path):
    run = Run(tmp_path / "r", log_file=False)
    run.log_metrics(1, loss=0.5)
    run.log_metrics(2, loss=0.25)
    with (run.path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "lo')  # killed mid-write
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    run.truncate_metrics(after_step=1)
    assert (run.path / "metrics.jsonl").read_text() == json.dumps(run.read_metrics()[0]) + "\n"
    with (run.path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "lo\n{"step": 4}\n')  # damage inside the file is not a crash's: say where it is
    with pytest.raises(StateError, match=r"metrics.jsonl: line 2 is not JSON"):
        run.read_metrics()


def test_metrics_are_appended_in_one_write_with_o_append(tmp_path, monkeypatch):
    calls = []
    real_open, real_write = os.open, os.write
    monkeypatch.setattr(ckpt.os, "open", lambda p, flags, *a: calls.append(("open", flags)) or real_open(p, flags, *a))
    monkeypatch.setattr(ckpt.os, "write", lambda fd, data: calls.append(("write", data)) or real_write(fd, data))
    run = Run(tmp_path / "r", log_file=False)
    run.log_metrics(7, loss=1.0)
    monkeypatch.undo()
    writes = [c for c in calls if c[0] == "write"]
    assert len(writes) == 1 and writes[0][1].endswith(b"\n") and json.loads(writes[0][1])["step"] == 7
    assert any(c[0] == "open" and c[1] & os.O_APPEND for c in calls)


def test_resume_after_a_torn_metrics_line(demo_root, tmp_path, tiny_seg):
    out = tmp_path / "seg"
    args = ["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]
    assert main(args) == 0
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "loss": 0.')
    assert main([*args, "--resume"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 2


def test_refused_resume_keeps_config_yaml(demo_root, tmp_path, tiny_seg, capsys):
    out = tmp_path / "seg"
    args = ["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]
    assert main(args) == 0
    recorded = (out / "config.yaml").read_bytes()
    assert main([*args[:-2], "model.width=16", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "model.width" in err and len(err.splitlines()) == 1
    assert (out / "config.yaml").read_bytes() == recorded  # the run dir still describes the model it holds


def test_resume_of_a_run_recorded_before_a_config_field_existed(demo_root, tmp_path, tiny_seg):
    """A run whose config.yaml lacks a field added since (at its default) resumes; a real change is still refused."""
    out = tmp_path / "seg"
    args = ["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]
    assert main(args) == 0
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    del recorded["mix"]["separate_bn"]  # as an older synthlabel wrote it
    (out / "config.yaml").write_text(yaml.safe_dump(recorded, sort_keys=False))
    assert main([*args, "--resume"]) == 0
    changed = ["train-seg", *tiny_seg(demo_root, steps=2), "mix.separate_bn=true", "--out", str(out), "--resume"]
    assert main(changed) == 2
