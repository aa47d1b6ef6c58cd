"""Models on disk: a directory of `config.json` + one `.safetensors` per network; training state readable with
`torch.load(..., weights_only=True)`. Every write is atomic (temp file or dir, then rename)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from synthlabel import __version__
from synthlabel.errors import SynthlabelError

FORMAT_VERSION = 1


def _default_mode(base: int) -> int:
    """Permissions a plain open() would give (mkstemp/mkdtemp make files owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block succeeds it replaces `path` in one rename, and when it
    fails the temp file is removed, so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(directory: str | Path) -> Iterator[Path]:
    """Yield a temp folder beside `directory`; on success it replaces `directory` (an existing one is moved aside
    first, since a rename cannot replace a non-empty folder); on failure it is removed."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o777))
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def save_model(
    directory: str | Path, name: str, config: dict, networks: dict[str, torch.nn.Module], extra: dict | None = None
) -> Path:
    """Write `directory` atomically: config.json (registry name, config, versions) + `<net>.safetensors`."""
    meta = {"name": name, "config": config, "networks": sorted(networks), "synthlabel_version": __version__}
    meta = {**meta, "format_version": FORMAT_VERSION, **(extra or {})}
    with atomic_dir(directory) as tmp:
        (tmp / "config.json").write_text(json.dumps(meta, indent=1))
        for key, net in networks.items():
            state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
            save_file(state, str(tmp / f"{key}.safetensors"))
    return Path(directory)


def read_model_config(directory: str | Path) -> dict:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise SynthlabelError(f"{directory}: not a synthlabel model directory (no config.json)")
    meta = json.loads(path.read_text())
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise SynthlabelError(
            f"{directory}: model format {meta['format_version']} is newer than this synthlabel; upgrade synthlabel"
        )
    return meta


def load_weights(directory: str | Path, key: str, net: torch.nn.Module) -> torch.nn.Module:
    path = Path(directory) / f"{key}.safetensors"
    if not path.is_file():
        raise SynthlabelError(f"{path}: weights file missing; the model directory is incomplete")
    net.load_state_dict(load_file(str(path)))
    return net


def model_hash(directory: str | Path) -> str:
    """Short content hash of a model directory's weights (recorded in synthetic-data manifests)."""
    h = hashlib.sha256()
    for p in sorted(Path(directory).glob("*.safetensors")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def save_state(path: str | Path, state: dict) -> None:
    """Training state (optimizer, step, RNG, ...) as tensors and plain values."""
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
