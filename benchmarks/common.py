"""Shared helpers for benchmarks: cached, resumable arms; machine record; result files."""

from __future__ import annotations

import json
import platform
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


def cached(path: Path) -> dict | None:
    """A finished arm's result, or None (results are written atomically when an arm completes)."""
    return json.loads(path.read_text()) if path.is_file() else None


def save_result(path: Path, result: dict) -> None:
    atomic_write_text(path, json.dumps({**result, "date": time.strftime("%Y-%m-%d"), "machine": machine()}, indent=1))
