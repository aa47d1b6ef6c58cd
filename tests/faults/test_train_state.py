"""train_state.pt that is truncated, empty or holds a pickle: refused as untrusted (weights_only load), never
executed, and the message never suggests weights_only=False."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from synthlabel import checkpoint as ckpt
from synthlabel.cli import main
from synthlabel.errors import StateError


class Booby:
    """Unpickling this creates the marker file (os.system would run any command the same way)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def booby_trapped_state(path, marker) -> None:
    torch.save({"step": 1, "model": Booby(str(marker))}, path)


def test_pickle_is_refused_and_never_run(tmp_path):
    path, marker = tmp_path / "train_state.pt", tmp_path / "pwned"
    booby_trapped_state(path, marker)
    with pytest.raises(StateError, match=f"{path}: not a synthlabel training state.*must not be trusted") as info:
        ckpt.load_state(path)
    assert "weights_only=False" not in str(info.value)
    assert not marker.exists()
    with open(path, "wb") as f:  # a bare pickle, not even a torch zip file
        pickle.dump(Booby(str(marker)), f)
    with pytest.raises(StateError, match="must not be trusted"):
        ckpt.load_state(path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_truncated_state_is_refused(tmp_path, damage):
    path = tmp_path / "train_state.pt"
    ckpt.save_state(path, {"step": 3, "w": torch.randn(64, 64)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(StateError, match=f"{path}: not a synthlabel training state"):
        ckpt.load_state(path)


def test_resume_from_a_booby_trapped_state_fails_cleanly(demo_root, tmp_path, tiny_seg, capsys):
    out, marker = tmp_path / "seg", tmp_path / "pwned"
    args = ["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]
    assert main(args) == 0
    booby_trapped_state(out / "train_state.pt", marker)
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "not a synthlabel training state" in err and "must not be trusted" in err
    assert "weights_only=False" not in err and "Traceback" not in err
    assert not marker.exists()


def test_a_state_of_another_kind_of_run_is_refused_by_name(demo_root, tmp_path, tiny_seg, capsys):
    out = tmp_path / "seg"
    args = ["train-seg", *tiny_seg(demo_root, steps=2), "--out", str(out)]
    assert main(args) == 0
    ckpt.save_state(out / "train_state.pt", {"step": 1, "G": {}, "rng": ckpt.rng_state()})  # a GAN run's keys
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another kind of run (no model, optimizer, scheduler)" in err and "Traceback" not in err


def test_a_state_of_another_width_is_refused_by_name(demo_root, tmp_path, tiny_seg, capsys):
    """A state written by another config (here width 16) under this run's config.yaml: one line naming the file."""
    wide, narrow = tmp_path / "wide", tmp_path / "narrow"
    assert main(["train-seg", *tiny_seg(demo_root, steps=2), "model.width=16", "--out", str(wide)]) == 0
    args = ["train-seg", *tiny_seg(demo_root, steps=4), "--out", str(narrow)]
    assert main(args) == 0
    (narrow / "train_state.pt").write_bytes((wide / "train_state.pt").read_bytes())
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{narrow / 'train_state.pt'}: does not fit this run's model" in err and "size mismatch" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
