"""Where a run stands, as the share p of its training done, and what follows p: the learning rate and the phases.

With ``--epochs N``, p is the share of the N epochs' steps taken; with ``--time-budget``, the share of the training
time spent, so that the learning rate and the phases follow the budget and training stops when it is spent
(budgeted training: Li et al. 2020). Everything else in a run is the same under both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ..distributed import all_reduce_max, is_distributed

DECAYS = ("cosine", "linear", "wsd")
# "wsd" (warm-up, stable, decay: Hu et al. 2024; Haegele et al. 2024): the peak held, then a line to zero over the
# last fifth of the run
WSD_COOLDOWN = 0.2


def lr_factor(p: float, step: int, warmup_steps: int, warmup_end: float, decay: str) -> float:
    """The learning rate over its peak at ``step`` and progress ``p``: a linear warm-up over ``warmup_steps``, then
    down to zero at p = 1 along a cosine or a line starting where the warm-up ended (p = ``warmup_end``), or, for
    "wsd", the peak held until the last ``WSD_COOLDOWN`` of the run and a line to zero over it."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if decay == "wsd":
        return min(1.0, max(0.0, (1 - p) / WSD_COOLDOWN))
    q = min(max((p - warmup_end) / (1 - warmup_end), 0.0), 1.0) if warmup_end < 1 else 1.0
    return 0.5 * (1 + math.cos(math.pi * q)) if decay == "cosine" else 1 - q


class Progress:
    """p in [0, 1]: ``steps`` taken of a fixed number (exact, the same on every machine), or seconds spent of a
    ``seconds`` budget read from ``clock`` (the slowest process's under torchrun, so that all stop together)."""

    def __init__(self, steps: int | None = None, seconds: float | None = None,
                 clock: Callable[[], float] = time.perf_counter, device: torch.device | str = "cpu"):
        if (steps is None) == (seconds is None) or (seconds if steps is None else steps) <= 0:
            raise ValueError(f"Progress needs steps or seconds, one of them and > 0; got {steps}, {seconds}")
        self.steps, self.seconds, self.clock, self.device = steps, seconds, clock, device
        self.started = clock()

    def start(self, seconds_done: float = 0.0) -> None:
        """Count the time from now on, after ``seconds_done`` already spent (a resumed run's)."""
        self.started = self.clock() - seconds_done

    def elapsed(self) -> float:
        return self.clock() - self.started

    def __call__(self, step: int) -> float:
        if self.steps is not None:
            return step / self.steps
        elapsed = self.elapsed()
        if is_distributed():  # one process alone reads its clock without a device round trip
            elapsed = float(all_reduce_max(torch.tensor([elapsed], device=self.device)))
        return elapsed / self.seconds

    def describe(self) -> str:
        return f"{self.steps} steps" if self.steps is not None else f"{self.seconds:.0f} s of training"
