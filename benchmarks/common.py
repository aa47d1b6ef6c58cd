"""Shared helpers for benchmarks: cached, resumable arms; machine record; result files."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import torch

from synthlabel.checkpoint import atomic_write_text
from synthlabel.device import resolve_precision

REPO = Path(__file__).resolve().parents[1]
SHARED_CAMVID = REPO.parent / "shared" / "data" / "camvid"


def machine() -> dict:
    prec = resolve_precision("auto", "auto")
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "device": prec.describe(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def command_line(script: str, summarize: bool, **profile) -> str:
    """The command a headline.json names: this invocation's, or with `--summarize` the profile the summarized runs
    come from (`profile`: flag -> value, e.g. seeds="0,1")."""
    if not summarize:
        return f"python benchmarks/{script} " + " ".join(sys.argv[1:])
    return f"python benchmarks/{script} " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in profile.items())


def cached(path: Path) -> dict | None:
    """A finished arm's result, or None (results are written atomically when an arm completes)."""
    return json.loads(path.read_text()) if path.is_file() else None


def save_result(path: Path, result: dict) -> None:
    atomic_write_text(path, json.dumps({**result, "date": time.strftime("%Y-%m-%d"), "machine": machine()}, indent=1))
