"""Model directories (config.json + safetensors), weights_only training state, atomic writes."""

import json

import torch

from synthlabel import checkpoint as ckpt


def test_model_dir_round_trip_and_atomic_replace(tmp_path):
    net = torch.nn.Linear(3, 2)
    d = ckpt.save_model(tmp_path / "m", "linear", {"in": 3}, {"net": net})
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "net.safetensors"]
    meta = json.loads((d / "config.json").read_text())
    assert meta["name"] == "linear" and meta["config"] == {"in": 3} and meta["format_version"] == ckpt.FORMAT_VERSION
    other = torch.nn.Linear(3, 2)
    ckpt.load_weights(d, "net", other)
    assert torch.equal(other.weight, net.weight)
    h1 = ckpt.model_hash(d)
    with torch.no_grad():
        net.weight.add_(1)
    ckpt.save_model(d, "linear", {"in": 3}, {"net": net})  # overwrite in place
    assert ckpt.model_hash(d) != h1
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp dirs left behind


def test_train_state_loads_with_weights_only(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt.save_state(tmp_path / "s.pt", {"step": 3, "optimizer": opt.state_dict(), "rng": ckpt.rng_state()})
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    assert state["step"] == 3 and "state" in state["optimizer"]
    assert ckpt.load_state(tmp_path / "s.pt")["step"] == 3


def test_atomic_writes_use_default_permissions_and_leave_nothing_on_failure(tmp_path):
    import os

    import pytest

    mask = os.umask(0o022)
    try:
        ckpt.atomic_write_text(tmp_path / "a.txt", "x")
        d = ckpt.save_model(tmp_path / "m", "linear", {}, {"net": torch.nn.Linear(1, 1)})
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644  # mkstemp alone would give 0o600
        assert d.stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(mask)
    with pytest.raises(RuntimeError), ckpt.atomic_dir(tmp_path / "m") as tmp:
        (tmp / "partial").write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "net.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "m"]
