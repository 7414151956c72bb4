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
from .errors import UserError
from .timing import time_steps

FIGURES_SECONDS = 10.0  # kept free at the end of a --time-budget run for plotting the figures
PLANNING_SHARE = 0.05  # the timed steps take at most this share of the budget (after the first timed step)
MAX_TIMED_STEPS = 30  # per resolution, within PLANNING_SHARE
# a whole epoch's steps take longer than the median timed step (measured: 17 % on the README's main job with fp32)
EPOCH_MARGIN = 1.2


def plan_epochs(model: nn.Module, train_loader, test_loader, optimizer, loss_fn, device: torch.device, *,
                time_budget: float, started: float, out: Path, precision: str = "fp32", grad_clip: float | None = 1.0,
                batch_transform=None, low_res_size: int | None = None, low_res_fraction: float = 0.0,
                eval_every: int = 1, save_every: int = 1, compiled: bool = False) -> int:
    """The number of epochs that fit in ``time_budget`` seconds counted from ``started`` (with ``low_res_size``,
    training steps are timed at both resolutions and weighted by ``low_res_fraction``)."""
    sizes = [None, low_res_size] if low_res_size else [None]  # None: the model's own size
    weights = {None: 1 - low_res_fraction, low_res_size: low_res_fraction} if low_res_size else {None: 1.0}

    def timed(size: int | None, steps: int, max_seconds: float | None, warmup: int) -> tuple[float, float]:
        if low_res_size:
            train_loader.image_size = size  # DeviceLoader: resize the training batches (None: the model's size)
        seconds = time_steps(model, train_loader, test_loader, optimizer, loss_fn, device, precision, grad_clip,
                             batch_transform, steps=steps, warmup=warmup, max_seconds=max_seconds, compiled=compiled,
                             eval_steps=steps if size is None else 0)
        if low_res_size:
            train_loader.image_size = None
        return seconds

    def fit(times: dict, save: float) -> int:
        # the slowest process sets the pace, and every process plans the same number of epochs (or fails alike)
        seconds = [times[size][0] for size in sizes] + [times[None][1], save, time.perf_counter() - started]
        *train_steps, eval_step, save, spent = all_reduce_max(torch.tensor(seconds, device=device)).tolist()
        train_step = sum(weights[size] * step for size, step in zip(sizes, train_steps))
        return epochs_that_fit(time_budget, len(train_loader), len(test_loader), train_step, eval_step, save, spent,
                               eval_every=eval_every, save_every=save_every,
                               batch_size=getattr(train_loader, "batch_size", None), precision=precision)

    # one step at each resolution first: a budget that cannot hold one epoch fails here, within seconds
    fit({size: timed(size, 1, None, warmup=1) for size in sizes}, 0.0)
    share = PLANNING_SHARE * time_budget / len(sizes)
    times = {size: timed(size, MAX_TIMED_STEPS, share, warmup=1) for size in sizes}  # warm again after a switch
    tic = time.perf_counter()
    scratch = out / f"timing-{os.getpid()}.tmp"  # one file per process under torchrun
    save_checkpoint(scratch, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict())
    scratch.unlink()
    return fit(times, time.perf_counter() - tic)


def epochs_that_fit(time_budget: float, train_batches: int, test_batches: int, train_step: float, eval_step: float,
                    save: float, spent: float, *, eval_every: int = 1, save_every: int = 1,
                    batch_size: int | None = None, precision: str | None = None) -> int:
    """Epochs of ``train_batches`` steps that fit in what is left of ``time_budget`` after ``spent`` seconds, the
    final evaluation and the figures, with an evaluation every ``eval_every`` and a save every ``save_every`` epochs.
    Pure arithmetic on measured step times, so that tests can give it any. Less than one epoch is a ``UserError``
    that names the measured step time and what to lower."""
    evaluation = eval_step * test_batches
    epoch = EPOCH_MARGIN * train_step * train_batches + evaluation / eval_every + save / save_every
    left = time_budget - spent - evaluation - FIGURES_SECONDS
    epochs = int(left // epoch)
    if epochs < 1:
        rate = f", {batch_size / train_step:.0f} images/s" if batch_size else ""
        step = f"a training step took {train_step:.2f} s{rate}" + (f" in {precision}" if precision else "")
        raise UserError(f"--time-budget {time_budget:g} s leaves {left:.0f} s for training, less than one epoch "
                        f"(about {epoch:.1f} s: {step}, {train_batches} steps an epoch): raise the budget, or lower "
                        "--train-size, --batch-size or the model's size (--hidden-dim, --num-layers)")
    return epochs

