"""``--time-budget``: as many epochs as fit in a wall-clock budget for the whole run.

The plan is made before training: a few training and evaluation steps are timed (``timing.time_steps``, which puts
model and optimizer back as they were), and a checkpoint write; what is left of the budget, after the final
evaluation and the figures, divided by the time of one epoch, is the number of epochs (``plan_epochs``). A few timed
steps are a noisy measure of a whole epoch, so the plan is made again after the first epoch, from that epoch's
measured time (``replanned_epochs``; ``fit_planned`` trains the parts). The first epoch is the same under any plan
(it is the warm-up, in the recipe's first phase), so the run equals a ``--epochs N`` run with the final N. With the
"wsd" decay the peak learning rate after the warm-up is the same under any plan too, so the plan is made again after
every epoch while it is held (``recipe.trained_alike``), from the latest epochs' times.

Planning is bounded: the timed steps take at most ``PLANNING_SHARE`` of the budget, and a budget that cannot hold
one epoch is reported after the first timed step, with the step time that was measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .checkpoint import save_checkpoint
from .distributed import all_reduce_max
from .engine import Checkpoints, fit, unwrap
from .optim import rescheduled, training_setup
from .precision import grad_scaler
from .recipe import ConfigError, TrainConfig, length_free_epochs, low_res_epochs, trained_alike
from .timing import time_steps

FIGURES_SECONDS = 10.0  # kept free at the end of a --time-budget run for plotting the figures
PLANNING_SHARE = 0.05  # the timed steps take at most this share of the budget (after the first timed step)
MAX_TIMED_STEPS = 30  # per resolution, within PLANNING_SHARE
# a whole epoch's steps take longer than the median timed step (measured: 17 % on the README's main job with fp32)
EPOCH_MARGIN = 1.2
# after the first epoch, the epochs at the other resolution (not measured yet) are counted at this many times the
# first epoch's measured factor (its time over its timed steps): in four runs on an AVX2-only CPU the 32x32 epochs'
# factor was 0.89-1.07 times the first 16x16 epoch's on average, 1.11 at most for a single epoch; in a fifth, while
# the machine slowed (its 16x16 epochs too, by 17 %), 1.4-1.75, and that run overran its budget by 17 %, as it would
# have with the margin of 1.2 kept before; in a sixth (30 minutes, wsd), 0.68, and it used 81 % of its budget: no
# margin covers a machine whose speed drifts (README)
UNMEASURED_MARGIN = 1.1
REPLAN_MIN_EPOCHS = 4  # a first plan of fewer epochs is kept: one epoch is too large a share of it to correct by
REPLAN_MAX_GROWTH = 10  # a new plan holds at most this many times the epochs of the plan it corrects
REPLAN_WINDOW = 3  # a later plan scales the timed steps by the last this many epochs at the latest resolution


@dataclass
class Plan:
    """A run's number of epochs and, when a time budget planned it, what it was planned from: seconds per training
    step at each training size (None: the model's own), per evaluation batch, and for a checkpoint write."""

    epochs: int
    train_steps: dict = field(default_factory=dict)  # empty: not planned from timings (fixed or resumed epochs)
    eval_step: float = 0.0
    save: float = 0.0
    replans: list = field(default_factory=list)  # [after epoch, epochs in all] for each change made while training

    def to_dict(self) -> dict:
        """For metrics.json: the plan's epochs and timings (sizes as text)."""
        return {"epochs": self.epochs, "train_steps": {str(k): v for k, v in self.train_steps.items()},
                "eval_step": self.eval_step, "save": self.save, "replans": self.replans}


def planned_epochs(model: nn.Module, trained: nn.Module, train_loader, test_loader, *, config: TrainConfig,
                   device: torch.device, started: float, precision: str, batch_transform=None,
                   resumed: dict | None = None) -> Plan:
    """The run's plan: ``config.epochs``; with a ``time_budget``, as many as fit (``plan_epochs``, timing
    ``trained``, the model as it will train: wrapped for torchrun or compiled); a resumed run keeps the plan of its
    first part."""
    if not config.time_budget:
        return Plan(config.epochs)
    if resumed is not None:
        return Plan(resumed.get("epochs_planned", config.epochs))
    optimizer, _, loss_fn = training_setup(model, config.lr, 1, len(train_loader), config.warmup_epochs,
                                           config.weight_decay, config.label_smoothing, optimizer=config.optimizer,
                                           precision=precision)
    return plan_epochs(trained, train_loader, test_loader, optimizer, loss_fn, config=config, device=device,
                       started=started, precision=precision, batch_transform=batch_transform)


def plan_epochs(model: nn.Module, train_loader, test_loader, optimizer, loss_fn, *, config: TrainConfig,
                device: torch.device, started: float, precision: str = "fp32", batch_transform=None) -> Plan:
    """The ``Plan``: the number of epochs of ``config``'s recipe that fit in its ``time_budget`` seconds counted
    from ``started`` (with ``low_res_size``, training steps are timed at both resolutions and weighted by
    ``low_res_fraction``), and the step times it was made from. The timing writes one scratch checkpoint in
    ``config.out``."""
    time_budget, low_res_size, low_res_fraction = config.time_budget, config.low_res_size, config.low_res_fraction
    sizes = [None, low_res_size] if low_res_size else [None]  # None: the model's own size
    weights = {None: 1 - low_res_fraction, low_res_size: low_res_fraction} if low_res_size else {None: 1.0}

    def timed(size: int | None, steps: int, max_seconds: float | None, warmup: int) -> tuple[float, float]:
        return time_at_size(model, train_loader, test_loader, optimizer, loss_fn, size, config=config, device=device,
                            precision=precision, steps=steps, warmup=warmup, max_seconds=max_seconds,
                            batch_transform=batch_transform, compiled=config.compile)

    def plan_for(times: dict, save: float) -> Plan:
        # the slowest process sets the pace, and every process plans the same number of epochs (or fails alike)
        seconds = [times[size][0] for size in sizes] + [times[None][1], save, time.perf_counter() - started]
        *train_steps, eval_step, save, spent = all_reduce_max(torch.tensor(seconds, device=device)).tolist()
        train_step = sum(weights[size] * step for size, step in zip(sizes, train_steps))
        epochs = epochs_that_fit(time_budget, len(train_loader), len(test_loader), train_step, eval_step, save, spent,
                                 eval_every=config.eval_every, save_every=config.save_every,
                                 batch_size=getattr(train_loader, "batch_size", None), precision=precision)
        return Plan(epochs, dict(zip(sizes, train_steps)), eval_step, save)

    # one step at each resolution first: a budget that cannot hold one epoch fails here, within seconds
    plan_for({size: timed(size, 1, None, warmup=1) for size in sizes}, 0.0)
    share = PLANNING_SHARE * time_budget / len(sizes)
    times = {size: timed(size, MAX_TIMED_STEPS, share, warmup=1) for size in sizes}  # warm again after a switch
    tic = time.perf_counter()
    scratch = Path(config.out) / f"timing-{os.getpid()}.tmp"  # one file per process under torchrun
    save_checkpoint(scratch, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict())
    scratch.unlink()
    return plan_for(times, time.perf_counter() - tic)


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


def replannable(plan: Plan, config: TrainConfig, steps_per_epoch: int) -> bool:
    """Whether the plan is corrected as it trains: it was timed, holds ``REPLAN_MIN_EPOCHS`` or more, and its first
    epoch trains as under any plan of 2 epochs or more (``recipe.trained_alike``: all warm-up, in the same phase)."""
    return (bool(plan.train_steps) and plan.epochs >= REPLAN_MIN_EPOCHS
            and trained_alike(config, plan.epochs, 2, 1, steps_per_epoch))


def replanned_epochs(plan: Plan, config: TrainConfig, epoch_seconds: list[float], spent: float, train_batches: int,
                     test_batches: int) -> int:
    """The epochs in all once the epochs so far have taken ``epoch_seconds`` (each: training, and its evaluation if
    it had one) and ``spent`` seconds of the budget are gone. The timed steps are scaled by how far they were off on
    the last ``REPLAN_WINDOW`` epochs at the latest epoch's resolution (their measured training time over their
    planned steps, which replaces ``EPOCH_MARGIN`` there; recent epochs, as a machine's speed drifts); at the other
    resolution, if no epoch has measured it yet, ``UNMEASURED_MARGIN`` times that (the timed steps of the two sizes
    can be off by somewhat different factors). Every further epoch is counted at its own resolution, with its
    evaluation and checkpoint. Pure arithmetic, so that tests can give it any times; at least one epoch more than
    those done, at most ``REPLAN_MAX_GROWTH`` times the plan it corrects (``plan``)."""
    done, evaluation = len(epoch_seconds), plan.eval_step * test_batches
    sizes = [config.low_res_size if epoch < low_res_epochs(config, plan.epochs) else None for epoch in range(done)]
    trained = [seconds - evaluation * ((epoch + 1) % config.eval_every == 0)
               for epoch, seconds in enumerate(epoch_seconds)]
    recent = [epoch for epoch in range(done) if sizes[epoch] == sizes[-1]][-REPLAN_WINDOW:]
    margin = max(sum(trained[epoch] for epoch in recent), 0.0) / (
        len(recent) * train_batches * plan.train_steps[sizes[-1]])
    # a resolution no epoch has measured is counted a little slower than the measured one
    margins = {size: margin if size == sizes[-1] else UNMEASURED_MARGIN * margin for size in plan.train_steps}

    def seconds(epochs: int) -> float:  # the epochs after those done, each at its size, with its evaluation and save
        low, total = low_res_epochs(config, epochs), 0.0
        for epoch in range(done + 1, epochs + 1):
            size = config.low_res_size if epoch <= low else None
            total += margins[size] * train_batches * plan.train_steps[size]
            total += evaluation * (epoch % config.eval_every == 0 or epoch == epochs)
            total += plan.save * (epoch % config.save_every == 0 or epoch == epochs)
        return total

    left, epochs = config.time_budget - spent - FIGURES_SECONDS, done + 1
    while epochs < REPLAN_MAX_GROWTH * plan.epochs and seconds(epochs + 1) <= left:
        epochs += 1
    return epochs


def nearest_alike(config: TrainConfig, epochs: int, wanted: int, done: int, steps_per_epoch: int) -> int:
    """The number of epochs nearest ``wanted`` (the fewer, of two as near) under which the ``done`` epochs trained
    so far would have trained alike (``recipe.trained_alike``): ``epochs`` itself at worst."""
    alike = [epochs] + [other for other in range(done + 1, max(epochs, wanted) + 1)
                        if other != epochs and trained_alike(config, epochs, other, done, steps_per_epoch)]
    return min(alike, key=lambda other: (abs(other - wanted), other))


def fit_planned(model: nn.Module, train_loader, test_loader, *, plan: Plan, config: TrainConfig, optimizer,
                scheduler, device: torch.device, started: float, precision: str = "fp32",
                checkpoints: Checkpoints | None = None, resume: dict | None = None,
                phases: Callable[[int, bool], Callable | None] | None = None, log: bool = True, **options
                ) -> tuple[Plan, dict]:
    """``engine.fit`` for the plan's epochs, corrected as it trains when ``replannable``: after the first epoch, and
    after every further one that still trains alike under other plans (``recipe.trained_alike``: with the "wsd"
    decay, while the peak learning rate is held), ``replanned_epochs`` counts the epochs from the measured times
    (the slowest process's under torchrun), ``nearest_alike`` keeps the run exact, and training goes on under the
    learning-rate schedule and phases of the new number (``optim.rescheduled``; ``phases(epochs, log)`` gives
    ``fit``'s ``before_epoch``). ``resume`` and ``options`` go to ``fit``. Returns the final plan (its ``replans``:
    each change, after which epoch, to how many) and the history."""
    scaler, epochs, steps = grad_scaler(device, precision), plan.epochs, len(train_loader)
    common = dict(device=device, precision=precision, scaler=scaler, checkpoints=checkpoints, log=log) | options

    def before(epochs: int, log_phases: bool):
        return phases(epochs, log_phases) if phases is not None else None

    if not replannable(plan, config, steps):
        return plan, fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                         resume=resume, before_epoch=before(epochs, log), **common)
    history, done, replans, announce = None, 0, [], False
    while True:
        # train one more epoch while a plan of another length could still take over after it, else to the end
        until = done + 1 if done + 1 <= length_free_epochs(config, epochs, steps) else None
        history = fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                      until=until, resume=resume if done == 0 else {"epoch": done, "history": history},
                      before_epoch=before(epochs, log and announce), **common)
        done = len(history["epoch"])
        if until is None or done >= epochs:
            return replace(plan, epochs=epochs, replans=replans), history
        measured = all_reduce_max(torch.tensor([*history["epoch_time"], time.perf_counter() - started],
                                               device=device)).tolist()
        wanted = replanned_epochs(replace(plan, epochs=epochs), config, measured[:-1], measured[-1], steps,
                                  len(test_loader))
        new = nearest_alike(config, epochs, wanted, done, steps)
        announce = done == 1 or new != epochs
        if log and announce:
            took = "the first epoch took" if done == 1 else f"epoch {done} took"
            print(f"--time-budget: {took} {measured[done - 1]:.1f} s; {new} epochs in all (planned before it: "
                  f"{epochs})")
        if new != epochs:
            replans.append([done, new])
            scheduler = rescheduled(scheduler, new, steps, config.warmup_epochs, config.decay)
            if checkpoints is not None:
                checkpoints.extra_state["epochs_planned"] = new
            epochs = new
