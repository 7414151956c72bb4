"""``--time-budget``: as many epochs as fit in a wall-clock budget for the whole run.

The plan is made once, before training: a few training and evaluation steps are timed (``timing.time_steps``, which
puts model and optimizer back as they were), and a checkpoint write; what is left of the budget, after the final
evaluation and the figures, divided by the time of one epoch, is the number of epochs. The learning-rate schedule is
then built for exactly that many, so the run equals a ``--epochs N`` run with the planned N.
"""

from __future__ import annotations

import argparse
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


def plan_epochs(args: argparse.Namespace, model: nn.Module, train_loader, test_loader, optimizer, loss_fn,
                device: torch.device, precision: str, batch_transform, started: float, out: Path) -> int:
    """The number of epochs that fit in ``args.time_budget`` seconds counted from ``started`` (with
    --low-res-size, training steps are timed at both resolutions and weighted by --low-res-fraction)."""
    def timed() -> tuple[float, float]:
        return time_steps(model, train_loader, test_loader, optimizer, loss_fn, device, precision, args.grad_clip,
                          batch_transform)

    train_step, eval_step = timed()
    if args.low_res_size:
        train_loader.image_size = args.low_res_size
        low_step = timed()[0]
        train_loader.image_size = None
        train_step = args.low_res_fraction * low_step + (1 - args.low_res_fraction) * train_step
    tic = time.perf_counter()
    scratch = out / f"timing-{os.getpid()}.tmp"  # one file per process under torchrun
    save_checkpoint(scratch, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict())
    scratch.unlink()
    seconds = torch.tensor([train_step, eval_step, time.perf_counter() - tic, time.perf_counter() - started],
                           device=device)
    # the slowest process sets the pace, and every process plans the same number of epochs
    train_step, eval_step, save, spent = all_reduce_max(seconds).tolist()
    return epochs_that_fit(args, len(train_loader), len(test_loader), train_step, eval_step, save, spent)


def epochs_that_fit(args: argparse.Namespace, train_batches: int, test_batches: int, train_step: float,
                    eval_step: float, save: float, spent: float) -> int:
    """Epochs of ``train_batches`` steps that fit in what is left of ``args.time_budget`` after ``spent`` seconds,
    the final evaluation and the figures, with an evaluation every --eval-every and a save every --save-every epochs.
    Pure arithmetic on measured step times, so that tests can give it any."""
    evaluation = eval_step * test_batches
    epoch = train_step * train_batches + evaluation / args.eval_every + save / args.save_every
    left = args.time_budget - spent - evaluation - FIGURES_SECONDS
    epochs = int(left // epoch)
    if epochs < 1:
        raise UserError(f"--time-budget {args.time_budget:g} s leaves {left:.0f} s for training, less than one epoch "
                        f"(about {epoch:.1f} s): raise the budget, or use a smaller model or --train-size")
    return epochs
