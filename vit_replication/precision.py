"""Mixed precision: which number format to compute in, on which device.

bf16 keeps fp32's range, so it needs no loss scaling; GPUs of compute capability >= 8.0 (A100, H100, RTX 30xx and
later) run it natively. Older GPUs (Colab's free T4, V100) emulate bf16 matrix products, so there fp16 is the fast
format, with a ``GradScaler`` that scales the loss up so that small gradients do not underflow. On a CPU, fp32 is
the safe default; bf16 is much faster on CPUs with AVX-512 BF16 or AMX (the CPU recipe in the README uses it).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from .errors import UserError

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def resolve_precision(precision: str, device: torch.device, capability: tuple[int, int] | None = None) -> str:
    """``auto`` -> bf16 on a GPU of compute capability >= 8.0 (A100, H100, RTX 30xx and later), fp16 (with loss
    scaling) below it (T4, V100: their bf16 matrix products are emulated), fp32 on a CPU; other values pass through.
    ``capability`` overrides what the GPU reports (for tests)."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    major, _ = capability or torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def autocast(device: torch.device, precision: str = "fp32"):
    """Autocast to bf16 or fp16 on ``device`` (CPU included: bf16 there uses AVX-512/AMX where the CPU has them);
    a no-op for fp32. ``precision`` is resolved (see ``resolve_precision``)."""
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in dtypes:
        return torch.autocast(device.type, dtype=dtypes[precision])
    return nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (gradients that would underflow in fp16 are scaled up, steps with inf/NaN skipped);
    a pass-through scaler (enabled=False) for the other precisions."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def fast_precision(device: torch.device, cpu_flags: str | None = None) -> str:
    """The fastest safe format for ``device``: ``resolve_precision("auto")`` on a GPU; on a CPU bf16 where it
    computes bf16 natively (the ``avx512_bf16`` or ``amx_bf16`` flags of /proc/cpuinfo), fp32 elsewhere, where
    bf16 would be emulated and slow. ``cpu_flags`` replaces /proc/cpuinfo's text (for tests)."""
    if device.type != "cpu":
        return resolve_precision("auto", device)
    cpu_flags = cpuinfo() if cpu_flags is None else cpu_flags
    return "bf16" if {"avx512_bf16", "amx_bf16"} & set(cpu_flags.split()) else "fp32"


def cpuinfo() -> str:
    """The text of /proc/cpuinfo: the CPU's model name and flags (empty where there is none, as on macOS)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
