"""One place maps exception kinds to one line and exit code 2: typed library errors, a read-only output folder and a
full disk (both name the path); the traceback only with --debug; nothing half-written is left behind."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from synthlabel import checkpoint as ckpt
from synthlabel.cli import error_message, main
from synthlabel.errors import DiskFullError


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def leftovers(root) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_read_only_output_folder_is_named(demo_root, tmp_path, tiny_seg, monkeypatch, capsys):
    out = tmp_path / "seg"

    def refuse(dir, prefix, suffix):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, prefix + "x" + suffix))

    monkeypatch.setattr(ckpt.tempfile, "mkstemp", refuse)
    assert main(["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"error: {out}: folder is read-only or not writable" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_really_read_only_folder(demo_root, tmp_path, tiny_seg, capsys):
    out = tmp_path / "seg"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]) == 2
    finally:
        out.chmod(0o755)
    assert f"{out}: folder is read-only or not writable" in one_line(capsys.readouterr().err)


def full_disk_save(obj, f, *args, **kwargs):
    """torch.save on a full disk: part of the file written, then the zip writer's error."""
    with open(f, "wb") as fh:
        fh.write(b"PK\x03\x04partial")
    raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4160 vs 4054")


def test_disk_full_while_saving_state_names_the_file_and_keeps_the_last_state(tmp_path, monkeypatch):
    path = tmp_path / "train_state.pt"
    ckpt.save_state(path, {"step": 2})
    monkeypatch.setattr(ckpt.torch, "save", full_disk_save)
    with pytest.raises(DiskFullError, match=f"{path}: disk full"):
        ckpt.save_state(path, {"step": 4})
    monkeypatch.undo()
    assert ckpt.load_state(path) == {"step": 2} and leftovers(tmp_path) == []


def test_disk_full_in_a_training_run_is_one_line(demo_root, tmp_path, tiny_seg, monkeypatch, capsys):
    out = tmp_path / "seg"
    monkeypatch.setattr(ckpt.torch, "save", full_disk_save)
    assert main(["train-seg", *tiny_seg(demo_root, steps=4), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "disk full" in line and str(out / "train_state.pt") in line
    assert not (out / "train_state.pt").exists() and leftovers(out) == []


def test_error_kinds_map_to_messages():
    assert "disk full" in error_message(OSError(errno.ENOSPC, "No space left on device", "/x/metrics.jsonl"))
    assert "/x/metrics.jsonl" in error_message(OSError(errno.ENOSPC, "No space left on device", "/x/metrics.jsonl"))
    assert "read-only" in error_message(OSError(errno.EACCES, "Permission denied", "/nonexistent/dir/f.txt"))
    assert "disk full" in error_message(RuntimeError("unexpected pos 10 vs 4"))
    assert error_message(ZeroDivisionError()) is None  # a bug keeps its traceback
    assert error_message(RuntimeError("size mismatch")) is None


def test_debug_flag_prints_the_traceback(tmp_path, capsys):
    assert main(["eval-seg", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["--debug", "eval-seg", str(tmp_path), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")
    assert "ModelError" in err


def test_model_save_on_a_full_disk_keeps_the_old_model(tmp_path, monkeypatch):
    d = ckpt.save_model(tmp_path / "m", "linear", {}, {"net": torch.nn.Linear(2, 2)})
    before = ckpt.model_hash(d)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", no_space)
    with pytest.raises(DiskFullError, match=f"{d / 'net.safetensors'}: disk full"):
        ckpt.save_model(d, "linear", {}, {"net": torch.nn.Linear(2, 2)})
    assert ckpt.model_hash(d) == before and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
