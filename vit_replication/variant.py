"""One variant of a comparison, trained by the project's one recipe object: built right after ``set_seed`` on the
device, running as the recipe trains it (attention kernel, patch dropout, drop path, low-resolution phase), trained by
``engine.fit`` with the recipe's optimiser, schedule and phases. ``compare`` runs it once per seed; ``transfer``
once per method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .engine import fit, set_seed
from .mimetic import initialise
from .model import count_parameters
from .optim import training_setup
from .recipe import TrainConfig, epoch_schedule


def check_comparable(recipe: TrainConfig) -> None:
    """Comparisons train with the recipe's schedule, phases (low resolution, patch dropout) and regularisation;
    settings they do not apply are refused rather than ignored."""
    unsupported = [name for name in ("mixup", "cutmix", "ema") if getattr(recipe, name)]
    if unsupported:
        raise ValueError(f"train_variant does not apply {', '.join(unsupported)}: set it to 0 in the "
                         "recipe, or train with train.run")


def build_for(build: Callable[[], nn.Module], recipe: TrainConfig, device: torch.device) -> nn.Module:
    """The variant of ``build``, built right after ``set_seed(recipe.seed)`` with the recipe's initial weights
    (``mimetic.initialise``) on ``device``, running as the recipe trains it: its attention kernel unless "auto"
    (then the model's own; pass the one ``choose_precision`` timed fastest), its patch dropout, its drop path when
    set (None: the model's own), other image sizes when it has a low-resolution phase."""
    check_comparable(recipe)
    set_seed(recipe.seed)
    model = initialise(build(), recipe.init).to(device)
    changes = {"attention": recipe.attention} if recipe.attention != "auto" else {}
    changes |= {"patch_dropout": recipe.patch_dropout} if recipe.patch_dropout else {}
    changes |= {"drop_path": recipe.drop_path} if recipe.drop_path is not None else {}
    changes |= {"dynamic_image_size": True} if recipe.low_res_size is not None else {}
    return model.configure(**changes) if changes else model


def train_variant(
    name: str,
    build: Callable[[], nn.Module],
    train_loader: Iterable,
    test_loader: Iterable,
    recipe: TrainConfig,
    device: torch.device,
    *,
    precision: str = "fp32",
    progress: bool = True,
    log: bool = True,
) -> dict:
    """Seed (``recipe.seed``), build, train and evaluate one variant; returns its name, seed, model, parameter
    count, history and times.

    The recipe is the one every run of the project follows (``recipe.TrainConfig``): ``epochs``, ``lr``,
    ``weight_decay``, ``warmup_epochs``, ``decay``, ``label_smoothing``, ``grad_clip``, ``eval_every``, and its
    phases (``recipe.epoch_schedule``): the first ``low_res_fraction`` of the epochs at ``low_res_size`` pixels,
    patch dropout for the first ``patch_dropout_fraction``; ``drop_path`` when set (None: the model's own).
    ``log``: a line per epoch (else none); ``precision`` as in ``engine.fit``."""
    model = build_for(build, recipe, device)
    optimizer, scheduler, loss_fn = training_setup(model, recipe.lr, recipe.epochs, len(train_loader),
                                                   recipe.warmup_epochs, recipe.weight_decay,
                                                   recipe.label_smoothing, recipe.decay, recipe.optimizer,
                                                   precision)
    before_epoch = epoch_schedule(recipe, recipe.epochs, model=model, train_loader=train_loader, log=False)
    if log:
        print(f"{name}: {count_parameters(model):,} parameters")
    tic = time.perf_counter()
    history = fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler, epochs=recipe.epochs,
                  device=device, loss_fn=loss_fn, seed=recipe.seed, precision=precision, grad_clip=recipe.grad_clip,
                  eval_every=recipe.eval_every, before_epoch=before_epoch, progress=progress, log=log)
    return {
        "name": name, "seed": recipe.seed, "model": model.eval(), "parameters": count_parameters(model),
        "history": history, "seconds": time.perf_counter() - tic, "test_acc": history["test_acc"][-1],
        # training images per second of wall time, the per-epoch evaluation included
        "train_images_per_s": len(train_loader) * train_loader.batch_size * recipe.epochs
        / sum(history["epoch_time"]),
    }
