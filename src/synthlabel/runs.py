"""Run directories: resolved config first, environment record, log, JSON-lines metrics, seeding, progress."""

from __future__ import annotations

import json
import logging
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import yaml

from synthlabel import __version__, distributed
from synthlabel.cache import check_resume
from synthlabel.checkpoint import append_line, atomic_write_text
from synthlabel.errors import ConfigError, StateError

log = logging.getLogger("synthlabel")


def progress(iterable: Iterable, desc: str = "", total: int | None = None, every_s: float = 20.0) -> Iterator:
    """A tqdm bar on a terminal; plain log lines (at most every `every_s` s, and at the end) otherwise."""
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True)
        return
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    start = last = time.monotonic()
    i = 0
    for i, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            log.info("%s: %d/%s (%.0fs)", desc, i, total if total is not None else "?", now - start)
    if time.monotonic() - start >= every_s:
        log.info("%s: done %d in %.0fs", desc, i, time.monotonic() - start)


def setup_logging(log_file: Path | None = None, role: str = "run") -> None:
    """Console (stderr) + optional file logging for the synthlabel logger. A new file replaces the previous file of
    the same role only: a chain (role "chain") keeps its log.txt while each training run logs into its own too."""
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.INFO if distributed.env_rank() == 0 else logging.WARNING)  # one voice under torchrun
        h.setFormatter(fmt)
        log.addHandler(h)
    if log_file is not None:
        for h in [h for h in log.handlers if getattr(h, "synthlabel_role", None) == role]:
            log.removeHandler(h)
            h.close()
        fh = logging.FileHandler(log_file)
        fh.synthlabel_role = role
        fh.setFormatter(fmt)
        log.addHandler(fh)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device | str | None = None) -> dict:
    """Versions, device and git commit, for reproducing a run."""
    return {
        "synthlabel": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "device": str(device) if device is not None else None,
        "git_commit": git_commit(),
        "argv": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class Run:
    """A run directory: `config.yaml` (resolved, written first), `env.json`, `log.txt`, `metrics.jsonl`."""

    def __init__(
        self,
        path: str | Path,
        config: dict | None = None,
        resume: bool = False,
        log_file: bool = True,
        normalize: Callable[[dict], dict] | None = None,
    ):
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()) and not resume and (self.path / "config.yaml").exists():
            raise ConfigError(
                f"{self.path}: run directory already holds a run; pass --resume to continue it or choose another --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None and resume:
            check_resume(self.path, config, normalize)  # before anything is written: the dir keeps describing its model
        if config is not None:
            atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        if log_file:  # off for a run nested in a study, whose log.txt must keep the log
            setup_logging(self.path / "log.txt")

    def write_env(self, device=None) -> None:
        atomic_write_text(self.path / "env.json", json.dumps(environment(device), indent=1))

    def log_metrics(self, step: int, **values) -> None:
        row = {"step": step, "time": round(time.time(), 3), **{k: _plain(v) for k, v in values.items()}}
        append_line(self.path / "metrics.jsonl", json.dumps(row))

    def read_metrics(self) -> list[dict]:
        """The logged rows; a torn last line (a kill mid-append on a file system that splits the write) is dropped,
        as the manifest reader does, so it never blocks a resume."""
        p = self.path / "metrics.jsonl"
        lines = [line for line in p.read_text().splitlines() if line.strip()] if p.exists() else []
        rows = []
        for n, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if n < len(lines) - 1:
                    raise StateError(f"{p}: line {n + 1} is not JSON; fix or delete the line") from None
        return rows

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric rows past a resumed checkpoint's step so the log has no duplicates."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def _plain(v):
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v
