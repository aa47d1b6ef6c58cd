"""Models on disk: a directory of `config.json` + one `.safetensors` per network; training state readable with
`torch.load(..., weights_only=True)`. Every write is atomic (temp file or dir, then rename)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from synthlabel import __version__
from synthlabel.errors import ConfigError, DiskFullError, ModelError, StateError
from synthlabel.registry import Registry

FORMAT_VERSION = 1


def _default_mode(base: int) -> int:
    """Permissions a plain open() would give (mkstemp/mkdtemp make files owner-only)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def disk_full_named(path: str | Path) -> Iterator[None]:
    """Turn a full disk while writing `path` into one DiskFullError naming it (torch reports it as a RuntimeError
    'unexpected pos ...' from its zip writer, safetensors as its own error)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise DiskFullError(
            f"{path}: disk full while writing; free space and re-run (the previous file is kept)"
        ) from exc
    except (RuntimeError, SafetensorError) as exc:
        text = str(exc)
        if "unexpected pos" not in text and "No space left" not in text:
            raise
        raise DiskFullError(
            f"{path}: disk full while writing; free space and re-run (the previous file is kept)"
        ) from exc


def append_line(path: Path, line: str) -> None:
    """One write(2) with O_APPEND: a kill leaves the line whole or absent (never half of it), and lines appended by
    several ranks at once never interleave."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


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
            with disk_full_named(Path(directory) / f"{key}.safetensors"):
                save_file(state, str(tmp / f"{key}.safetensors"))
            os.chmod(tmp / f"{key}.safetensors", _default_mode(0o666))  # safetensors writes owner-only files
    return Path(directory)


def read_model_config(directory: str | Path) -> dict:
    """config.json of a model directory: a dict with the registered 'name' and constructor 'config'."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise ModelError(f"{directory}: not a synthlabel model directory (no config.json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{path}: not valid JSON ({exc}); the model directory is damaged, train or copy it again"
        ) from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not isinstance(meta.get("config"), dict):
        raise ModelError(f"{path}: not a synthlabel model config (needs 'name' and a 'config' dict); train it again")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(
            f"{directory}: model format {meta['format_version']} is newer than this synthlabel; upgrade synthlabel"
        )
    return meta


def build_model(directory: str | Path, registry: Registry, name: str, **kwargs) -> torch.nn.Module:
    """registry.create(name, **kwargs) for the model saved in `directory`: an unknown name or a constructor argument
    this synthlabel does not take becomes one ModelError naming the directory."""
    return construct(directory, f"{registry.kind} {name!r}", lambda: registry.create(name, **kwargs))


def construct(directory: str | Path, what: str, make: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """make() for the model saved in `directory`; a missing, unknown or ill-typed field of its config.json becomes
    one ModelError naming the file."""
    try:
        return make()
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"{Path(directory) / 'config.json'}: cannot build {what} ({type(exc).__name__}: {exc}); the model was "
            "saved by another synthlabel version or edited: train it again"
        ) from exc


def load_weights(directory: str | Path, key: str, net: torch.nn.Module) -> torch.nn.Module:
    """Load `<directory>/<key>.safetensors` into net; a damaged file or weights of another shape is a ModelError."""
    path = Path(directory) / f"{key}.safetensors"
    if not path.is_file():
        raise ModelError(f"{path}: weights file missing; the model directory is incomplete")
    try:
        net.load_state_dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: damaged weights file ({exc}); train or copy the model again") from exc
    except RuntimeError as exc:  # missing/unexpected keys or another width
        first = str(exc).strip().splitlines()[-1].strip()
        raise ModelError(f"{path}: weights do not fit the model in config.json ({first}); train it again") from exc
    return net


def model_hash(directory: str | Path) -> str:
    """Short content hash of a model directory's weights (recorded in synthetic-data manifests)."""
    h = hashlib.sha256()
    for p in sorted(Path(directory).glob("*.safetensors")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def save_state(path: str | Path, state: dict) -> None:
    """Training state (optimizer, step, RNG, ...) as tensors and plain values."""
    with atomic_file(path) as tmp, disk_full_named(path):
        torch.save(state, tmp)


def load_state(path: str | Path, required: tuple[str, ...] = ()) -> dict:
    """Training state saved by `save_state`. Loaded with weights_only=True, so no pickled code ever runs; a file that
    needs more (or is truncated) is refused as untrusted, and one without the `required` keys (the state of another
    kind of run) is refused by name."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError):
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as exc:
        raise StateError(
            f"{path}: not a synthlabel training state (truncated, or it holds objects other than tensors); it must "
            "not be trusted: delete it and train without --resume"
        ) from exc
    if not isinstance(state, dict):
        raise StateError(f"{path}: not a synthlabel training state; it must not be trusted: delete it")
    missing = [key for key in required if key not in state]
    if missing:
        raise StateError(
            f"{path}: the training state of another kind of run (no {', '.join(missing)}); resume it with the command "
            "that wrote it, or train this run without --resume"
        )
    return state


@contextmanager
def restoring(path: str | Path) -> Iterator[None]:
    """Around loading a state's parts into this run's model and optimizer: a part of another shape (a state written
    by another config, e.g. another width) is a StateError naming the file, not torch's size-mismatch dump."""
    try:
        yield
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
        raise StateError(
            f"{path}: does not fit this run's model or optimizer ({first}); it was written by another config: resume "
            "with that config, or train without --resume"
        ) from exc


def rng_state() -> dict:
    return {"torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
