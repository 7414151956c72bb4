"""Timing steps honestly: warm-up first (where ``torch.compile`` compiles), the GPU synchronised before the clock
is read. Used by ``--time-budget`` (``budget``), ``compare`` and the benchmarks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from itertools import islice

import torch
from torch import nn
from torch.utils.data import DataLoader

from .engine import evaluate, train_one_epoch, unwrap


def seconds_per_step(run: Callable[[int], object], device: torch.device, warmup: int, steps: int) -> float:
    """Wall seconds per step of ``run(n)``, which performs n steps: timed over ``steps`` after ``warmup`` (where
    ``torch.compile`` compiles), waiting for the GPU to finish before reading the clock."""
    run(warmup)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    tic = time.perf_counter()
    run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - tic) / steps


def time_steps(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    device: torch.device,
    precision: str = "fp32",
    grad_clip: float | None = 1.0,
    batch_transform: Callable | None = None,
    steps: int = 10,
    warmup: int = 3,
) -> tuple[float, float]:
    """Seconds per training step and per evaluation batch, each timed over ``steps`` batches after ``warmup``
    (where ``torch.compile`` compiles; evaluation warms up over the whole test set). Afterwards the model's weights
    and the optimizer's state are put back as they were, so that training then starts exactly as it would have
    without the timing (``fit`` reseeds the random generators every epoch)."""
    weights = {k: v.clone() for k, v in unwrap(model).state_dict().items()}
    optimizer_state = copy.deepcopy(optimizer.state_dict())

    def batches(loader: DataLoader, n: int):  # n batches, going round the loader again if it has fewer
        while n > 0:
            for batch in islice(loader, n):
                n -= 1
                yield batch

    train_step = seconds_per_step(
        lambda n: train_one_epoch(model, batches(train_loader, n), optimizer, None, loss_fn, device, precision,
                                  grad_clip, False, batch_transform=batch_transform),
        device, warmup, steps)
    # evaluation warms up over the whole test set, so its last, smaller batch is compiled too
    eval_step = seconds_per_step(lambda n: evaluate(model, batches(test_loader, n), loss_fn, device, precision, False),
                                 device, max(warmup, len(test_loader)), steps)
    unwrap(model).load_state_dict(weights)
    optimizer.load_state_dict(optimizer_state)
    return train_step, eval_step
