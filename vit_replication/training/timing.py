"""Timing steps honestly: warm-up first (where ``torch.compile`` compiles), the GPU synchronised before the clock
is read. Used by ``compare`` and the benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def seconds_per_step(run: Callable[[int], object], device: torch.device, warmup: int, steps: int,
                     clock: Callable[[], float] = time.perf_counter) -> float:
    """Wall seconds per step of ``run(n)``, which performs n steps: timed over ``steps`` after ``warmup``, waiting
    for the GPU to finish before reading the clock. ``clock`` is injectable for tests."""
    run(warmup)
    synchronize(device)
    tic = clock()
    run(steps)
    synchronize(device)
    return (clock() - tic) / steps


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read afterwards includes it (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
