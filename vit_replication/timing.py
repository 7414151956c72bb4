"""Timing steps honestly: warm-up first (where ``torch.compile`` compiles), the GPU synchronised before the clock
is read. Used by ``--time-budget`` (``budget``), ``compare`` and the benchmarks.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from itertools import islice

import torch
from torch import nn
from torch.utils.data import DataLoader

from .distributed import all_reduce_max
from .engine import evaluate, train_one_epoch, unwrap


def seconds_per_step(run: Callable[[int], object], device: torch.device, warmup: int, steps: int,
                     max_seconds: float | None = None, clock: Callable[[], float] = time.perf_counter) -> float:
    """Wall seconds per step of ``run(n)``, which performs n steps: timed over ``steps`` after ``warmup`` (where
    ``torch.compile`` compiles), waiting for the GPU to finish before reading the clock. With ``max_seconds`` the
    steps are run one at a time, the timing stops once that many seconds were spent on them (after at least one,
    and after the same step in every process under torchrun), and the median step is returned, which a stray slow
    step does not move. ``clock`` is injectable for tests."""
    run(warmup)
    synchronize(device)
    if max_seconds is None:
        tic = clock()
        run(steps)
        synchronize(device)
        return (clock() - tic) / steps
    times, tic = [], clock()
    while len(times) < steps:
        before = clock()
        run(1)
        synchronize(device)
        times.append(clock() - before)
        # under torchrun every process must stop after the same step (each step ends in a collective)
        if all_reduce_max(torch.tensor([clock() - tic], device=device)) >= max_seconds:
            break
    return statistics.median(times)


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a clock read afterwards includes it (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    max_seconds: float | None = None,
    compiled: bool = False,
    eval_steps: int | None = None,
) -> tuple[float, float]:
    """Seconds per training step and per evaluation batch, each timed over ``steps`` (``eval_steps``; 0: no
    evaluation, 0.0 returned) batches after ``warmup``, each within ``max_seconds`` (see ``seconds_per_step``). A
    ``compiled`` model warms evaluation up over the whole test set, so its last, smaller batch is compiled too.
    Afterwards the model's weights and the optimizer's state are put back as they were, so that training then starts
    exactly as it would have without the timing (``fit`` reseeds the random generators every epoch)."""
    weights = {k: v.clone() for k, v in unwrap(model).state_dict().items()}
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    eval_steps = steps if eval_steps is None else eval_steps

    def batches(loader: DataLoader):  # one stream of batches, going round the loader again if it has fewer
        while True:
            yield from loader

    train_batches = batches(train_loader)
    train_step = seconds_per_step(
        lambda n: train_one_epoch(model, islice(train_batches, n), optimizer, None, loss_fn, device, precision,
                                  grad_clip, False, batch_transform=batch_transform),
        device, warmup, steps, max_seconds)
    eval_step = 0.0
    if eval_steps:
        test_batches = batches(test_loader)
        eval_step = seconds_per_step(lambda n: evaluate(model, islice(test_batches, n), loss_fn, device, precision,
                                                        False),
                                     device, len(test_loader) if compiled else warmup, eval_steps, max_seconds)
    unwrap(model).load_state_dict(weights)
    optimizer.load_state_dict(optimizer_state)
    return train_step, eval_step
