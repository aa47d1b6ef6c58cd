"""Device and numeric precision: CUDA when present; bf16 autocast + channels_last where the hardware has it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


def cpu_has_fast_bf16() -> bool:
    """True where oneDNN has bf16 kernels (AVX512-BF16 / AMX); elsewhere bf16 on CPU is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    device: torch.device
    bf16: bool

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    def describe(self) -> str:
        return f"{self.device.type}{' bf16 autocast' if self.bf16 else ' fp32'}"


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str = "auto", device: str = "auto") -> Precision:
    """`auto`: bf16 on CUDA with bf16 support and on CPUs with bf16 units, fp32 otherwise."""
    dev = resolve_device(device)
    if precision in ("fp32", "bf16"):
        return Precision(dev, precision == "bf16")
    return Precision(dev, torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_has_fast_bf16())
