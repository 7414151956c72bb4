"""``--time-budget``: the training gets what is left of the budget once the set-up, the final evaluation and the
figures are paid for, and ``schedule.Progress`` spends it. The final evaluation is timed by evaluating the
untrained model once before training (chance level: the curve's honest start)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..distributed import all_reduce_max
from .config import ConfigError
from .loop import Run, evaluate
from .schedule import Progress

FIGURES_SECONDS = 5.0  # kept for plotting the figures at the end of a run


def progress_for(run: Run, started: float, resume: dict | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> Progress:
    """The run's ``Progress``: its ``config.epochs`` of steps, or with ``config.time_budget`` (seconds for the
    whole job, counted from ``started``) the seconds left for training after two evaluations (the final one, and
    the figures' predictions) and ``FIGURES_SECONDS``. A resumed run keeps the budget of its first part."""
    config = run.config
    if not config.time_budget:
        return Progress(steps=run.steps())
    if resume is not None:
        return Progress(seconds=resume["budget_seconds"], clock=clock, device=run.device)
    tic = clock()
    untrained = evaluate(run.model, run.test_loader, run.device, run.precision)
    seconds = [clock() - tic, clock() - started]  # the slowest process's, so that all plan alike
    evaluation, spent = all_reduce_max(torch.tensor(seconds, device=run.device)).tolist()
    left = config.time_budget - spent - 2 * evaluation - FIGURES_SECONDS
    if left <= 0:
        raise ConfigError(f"time_budget {config.time_budget:g} s leaves no time for training: the set-up took "
                          f"{spent:.0f} s and an evaluation {evaluation:.1f} s; raise it, or lower train_size or "
                          "test_size", "time_budget", "train_size", "test_size")
    if run.log and run.rank == 0:
        print(f"--time-budget {config.time_budget:g} s: {left:.0f} s for training (set-up {spent:.0f} s; the "
              f"untrained model: {untrained['acc']:.2%} test accuracy, evaluated in {evaluation:.1f} s)")
    return Progress(seconds=left, clock=clock, device=run.device)
