"""``--time-budget``: as many epochs as fit in a wall-clock budget for the whole run.

The plan is made once, before training: a few training and evaluation steps are timed (``timing.time_steps``, which
puts model and optimizer back as they were), and a checkpoint write; what is left of the budget, after the final
evaluation and the figures, divided by the time of one epoch, is the number of epochs. The learning-rate schedule is
then built for exactly that many, so the run equals a ``--epochs N`` run with the planned N.

Planning is bounded: the timed steps take at most ``PLANNING_SHARE`` of the budget, and a budget that cannot hold
one epoch is reported after the first timed step, with the step time that was measured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from .checkpoint import save_checkpoint
from .distributed import all_reduce_max
from .engine import unwrap
from .optim import training_setup
from .recipe import ConfigError, TrainConfig
from .timing import time_steps

FIGURES_SECONDS = 10.0  # kept free at the end of a --time-budget run for plotting the figures
PLANNING_SHARE = 0.05  # the timed steps take at most this share of the budget (after the first timed step)
MAX_TIMED_STEPS = 30  # per resolution, within PLANNING_SHARE
# a whole epoch's steps take longer than the median timed step (measured: 17 % on the README's main job with fp32)
EPOCH_MARGIN = 1.2


def planned_epochs(model: nn.Module, trained: nn.Module, train_loader, test_loader, *, config: TrainConfig,
                   device: torch.device, started: float, precision: str, batch_transform=None,
                   resumed: dict | None = None) -> int:
    """The run's number of epochs: ``config.epochs``; with a ``time_budget``, as many as fit (``plan_epochs``,
    timing ``trained``, the model as it will train: wrapped for torchrun or compiled); a resumed run keeps the plan
    of its first part."""
    if not config.time_budget:
        return config.epochs
    if resumed is not None:
        return resumed.get("epochs_planned", config.epochs)
    optimizer, _, loss_fn = training_setup(model, config.lr, 1, len(train_loader), config.warmup_epochs,
                                           config.weight_decay, config.label_smoothing)
    return plan_epochs(trained, train_loader, test_loader, optimizer, loss_fn, config=config, device=device,
                       started=started, precision=precision, batch_transform=batch_transform)


def plan_epochs(model: nn.Module, train_loader, test_loader, optimizer, loss_fn, *, config: TrainConfig,
                device: torch.device, started: float, precision: str = "fp32", batch_transform=None) -> int:
    """The number of epochs of ``config``'s recipe that fit in its ``time_budget`` seconds counted from ``started``
    (with ``low_res_size``, training steps are timed at both resolutions and weighted by ``low_res_fraction``). The
    timing writes one scratch checkpoint in ``config.out``."""
    time_budget, low_res_size, low_res_fraction = config.time_budget, config.low_res_size, config.low_res_fraction
    sizes = [None, low_res_size] if low_res_size else [None]  # None: the model's own size
    weights = {None: 1 - low_res_fraction, low_res_size: low_res_fraction} if low_res_size else {None: 1.0}

    def timed(size: int | None, steps: int, max_seconds: float | None, warmup: int) -> tuple[float, float]:
        return time_at_size(model, train_loader, test_loader, optimizer, loss_fn, size, config=config, device=device,
                            precision=precision, steps=steps, warmup=warmup, max_seconds=max_seconds,
                            batch_transform=batch_transform, compiled=config.compile)

    def fit(times: dict, save: float) -> int:
        # the slowest process sets the pace, and every process plans the same number of epochs (or fails alike)
        seconds = [times[size][0] for size in sizes] + [times[None][1], save, time.perf_counter() - started]
        *train_steps, eval_step, save, spent = all_reduce_max(torch.tensor(seconds, device=device)).tolist()
        train_step = sum(weights[size] * step for size, step in zip(sizes, train_steps))
        return epochs_that_fit(time_budget, len(train_loader), len(test_loader), train_step, eval_step, save, spent,
                               eval_every=config.eval_every, save_every=config.save_every,
                               batch_size=getattr(train_loader, "batch_size", None), precision=precision)

    # one step at each resolution first: a budget that cannot hold one epoch fails here, within seconds
    fit({size: timed(size, 1, None, warmup=1) for size in sizes}, 0.0)
    share = PLANNING_SHARE * time_budget / len(sizes)
    times = {size: timed(size, MAX_TIMED_STEPS, share, warmup=1) for size in sizes}  # warm again after a switch
    tic = time.perf_counter()
    scratch = Path(config.out) / f"timing-{os.getpid()}.tmp"  # one file per process under torchrun
    save_checkpoint(scratch, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict())
    scratch.unlink()
    return fit(times, time.perf_counter() - tic)


def time_at_size(model: nn.Module, train_loader, test_loader, optimizer, loss_fn, size: int | None, *,
                 config: TrainConfig, device: torch.device, precision: str, steps: int, warmup: int,
                 max_seconds: float | None = None, batch_transform=None, compiled: bool = False
                 ) -> tuple[float, float]:
    """``timing.time_steps`` with the training batches at ``size`` pixels (None: the model's size; resized by the
    ``DeviceLoader`` when ``config`` has a low-resolution phase): seconds per training step, and per evaluation
    batch at the model's size (0.0 at another size, where nothing is evaluated). The loader is left at the model's
    size."""
    if config.low_res_size:
        train_loader.image_size = size
    try:
        return time_steps(model, train_loader, test_loader, optimizer, loss_fn, device, precision, config.grad_clip,
                          batch_transform, steps=steps, warmup=warmup, max_seconds=max_seconds, compiled=compiled,
                          eval_steps=steps if size is None else 0)
    finally:
        if config.low_res_size:
            train_loader.image_size = None


def epochs_that_fit(time_budget: float, train_batches: int, test_batches: int, train_step: float, eval_step: float,
                    save: float, spent: float, *, eval_every: int = 1, save_every: int = 1,
                    batch_size: int | None = None, precision: str | None = None) -> int:
    """Epochs of ``train_batches`` steps that fit in what is left of ``time_budget`` after ``spent`` seconds, the
    final evaluation and the figures, with an evaluation every ``eval_every`` and a save every ``save_every`` epochs.
    Pure arithmetic on measured step times, so that tests can give it any. Less than one epoch is a ``ConfigError``
    that names the measured step time and what to lower."""
    evaluation = eval_step * test_batches
    epoch = EPOCH_MARGIN * train_step * train_batches + evaluation / eval_every + save / save_every
    left = time_budget - spent - evaluation - FIGURES_SECONDS
    epochs = int(left // epoch)
    if epochs < 1:
        rate = f", {batch_size / train_step:.0f} images/s" if batch_size else ""
        step = f"a training step took {train_step:.2f} s{rate}" + (f" in {precision}" if precision else "")
        raise ConfigError(f"time_budget {time_budget:g} s leaves {left:.0f} s for training, less than one epoch "
                          f"(about {epoch:.1f} s: {step}, {train_batches} steps an epoch): raise the budget, or lower "
                          "train_size, batch_size or the model's size (hidden_dim, num_layers)",
                          "time_budget", "train_size", "batch_size", "hidden_dim", "num_layers")
    return epochs

