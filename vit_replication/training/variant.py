"""One variant of a comparison, trained by the project's one training path (``loop.Run`` and ``loop.fit``): built
right after ``set_seed`` on the device, running as the recipe trains it. ``compare`` runs it once per seed;
``transfer`` once per method.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict

import torch
from torch import nn

from ..model.vit import count_parameters
from .config import TrainConfig, model_runtime
from .loop import Run, fit, set_seed
from .mimetic import initialise
from .schedule import Progress


def check_comparable(recipe: TrainConfig) -> None:
    """Comparisons train every variant alike; settings that would mix labels are refused rather than ignored."""
    unsupported = [name for name in ("mixup", "cutmix") if getattr(recipe, name)]
    if unsupported:
        raise ValueError(f"train_variant does not apply {', '.join(unsupported)}: set it to 0 in the "
                         "recipe, or train with train.run")


def build_for(build: Callable[[], nn.Module], recipe: TrainConfig, device: torch.device) -> nn.Module:
    """The variant of ``build``, built right after ``set_seed(recipe.seed)`` with the recipe's initial weights
    (``mimetic.initialise``) on ``device``, running as the recipe trains it (``config.model_runtime``: patch
    dropout, drop path, other image sizes; the attention kernel unless "auto", then the model's own)."""
    check_comparable(recipe)
    set_seed(recipe.seed)
    model = initialise(build(), recipe.init).to(device)
    if not hasattr(model, "configure"):  # a model without runtime settings (a linear head): as built
        return model
    attention = model.runtime.attention if recipe.attention == "auto" else recipe.attention
    return model.configure(**asdict(model_runtime(recipe, attention)))


def train_variant(name: str, build: Callable[[], nn.Module], loaders: tuple[Iterable, Iterable],
                  recipe: TrainConfig, device: torch.device, precision: str = "fp32", log: bool = True) -> dict:
    """Seed (``recipe.seed``), build, train for ``recipe.epochs`` and evaluate one variant; returns its name,
    seed, model, parameter count, history and times. ``log``: a line per epoch (else none)."""
    model = build_for(build, recipe, device)
    run = Run.create(recipe, model, loaders, device, precision)
    run.log = log
    run.progress_bar = run.progress_bar and log  # a quiet run shows no progress bar either
    if log:
        print(f"{name}: {count_parameters(model):,} parameters")
    tic = time.perf_counter()
    history = fit(run, Progress(steps=run.steps()))
    images = sum(history["steps"]) * getattr(loaders[0], "batch_size", 0)
    return {
        "name": name, "seed": recipe.seed, "model": model.eval(), "parameters": count_parameters(model),
        "history": history, "seconds": time.perf_counter() - tic, "test_acc": history["test_acc"][-1],
        # training images per second of wall time, the per-epoch evaluation included
        "train_images_per_s": images / sum(history["epoch_time"]),
    }
