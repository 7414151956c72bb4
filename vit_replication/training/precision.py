"""Mixed precision: computing in bf16 or fp16 (autocast), and loss scaling for fp16.

bf16 keeps fp32's range, so it needs no loss scaling; GPUs of compute capability >= 8.0 (A100, H100, RTX 30xx and
later) run it natively. Older GPUs (Colab's free T4, V100) emulate bf16 matrix products, so there fp16 is the fast
format, with a ``GradScaler`` that scales the loss up so that small gradients do not underflow.

Which format is fast on the machine at hand is decided by ``precision_choice.choose_precision``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def autocast(device: torch.device, precision: str = "fp32"):
    """Autocast to bf16 or fp16 on ``device`` (CPU included: bf16 there uses AVX-512/AMX where the CPU has them);
    a no-op for fp32. ``precision`` is a chosen one (see ``choose_precision``), not "auto"."""
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in dtypes:
        return torch.autocast(device.type, dtype=dtypes[precision])
    if precision != "fp32":
        raise ValueError(f"precision must be bf16, fp16 or fp32 here (choose_precision resolves 'auto'), "
                         f"got {precision!r}")
    return nullcontext()


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (gradients that would underflow in fp16 are scaled up, steps with inf/NaN skipped);
    a pass-through scaler (enabled=False) for the other precisions."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def cpuinfo() -> str:
    """The text of /proc/cpuinfo: the CPU's model name and flags (empty where there is none, as on macOS)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpuinfo_field(name: str) -> str | None:
    """One field of /proc/cpuinfo's first processor ("model name", "flags"), None where there is none."""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo().splitlines()
                 if line.split(":", 1)[0].strip() == name), None)
