"""The training loop: one epoch of steps (mixed precision, loss scaling for fp16, gradient clipping), evaluation,
prediction, and ``fit``, which runs the epochs with per-epoch history, checkpoints and exact resume. The recipe it is
given (optimizer, schedule, loss) comes from ``optim``; checkpoints are written by ``checkpoint``.

Every epoch reseeds the global RNG and the training loader from (seed, epoch, rank), so a run resumed from the
checkpoint of epoch k continues exactly as the uninterrupted run would (tests/test_engine.py checks it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import save_checkpoint
from .distributed import all_reduce_sum, epoch_seed, rank_seed
from .ema import EMA
from .precision import autocast, grad_scaler

PROGRESS_INTERVAL = 2.0  # seconds between progress-bar updates: keeps notebook outputs small


def _progress(loader: DataLoader, description: str, show: bool):
    """A tqdm progress bar over ``loader`` that disappears when done."""
    return tqdm(loader, desc=description, leave=False, disable=not show, mininterval=PROGRESS_INTERVAL)


def set_seed(seed: int) -> None:
    """Seed Python's and PyTorch's RNGs (CPU and every GPU)."""
    random.seed(seed)
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel or torch.compile wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: nn.Module,
    device: torch.device,
    precision: str = "fp32",
    grad_clip: float | None = 1.0,
    progress: bool = True,
    description: str = "train",
    batch_transform: Callable | None = None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    ema: EMA | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and accuracy (fraction) over the samples seen.

    ``batch_transform`` (e.g. ``augment.batch_mixing``) maps (images, labels) on the device to (images, targets);
    with soft targets [B, classes] a prediction counts as correct when it is the class with the largest share.
    ``precision`` is bf16, fp16 or fp32 (``precision_choice.choose_precision``); fp16 needs a ``scaler``
    (``grad_scaler``). With ``ema`` its average follows every step.
    """
    scaler = scaler or grad_scaler(device, precision)
    model.train()
    totals = torch.zeros(3, device=device)  # summed loss, correct predictions, samples: kept on the device
    for images, labels in _progress(loader, description, progress):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if batch_transform is not None:
            images, targets = batch_transform(images, labels)
            labels = targets.argmax(dim=-1) if targets.ndim == 2 else targets
        else:
            targets = labels
        with autocast(device, precision):
            logits = model(images)
            loss = loss_fn(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update(model)
        totals[0] += loss.detach().float() * labels.shape[0]
        totals[1] += (logits.argmax(dim=-1) == labels).sum()
        totals[2] += labels.shape[0]
    total_loss, correct, seen = all_reduce_sum(totals).tolist()  # summed over processes under torchrun
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1)}


@torch.no_grad()
def predict(
    model: nn.Module, loader: DataLoader, device: torch.device, precision: str = "fp32", progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities [N, classes] and targets [N] for every sample of ``loader`` (on the CPU)."""
    model.eval()
    probs, targets = [], []
    for images, labels in _progress(loader, "predict", progress):
        with autocast(device, precision):
            logits = model(images.to(device, non_blocking=True))
        probs.append(logits.float().softmax(dim=-1).cpu())
        targets.append(labels)
    return torch.cat(probs), torch.cat(targets)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, device: torch.device, precision: str = "fp32",
    progress: bool = True,
) -> dict[str, float]:
    """Mean loss and accuracy (fraction) of ``model`` on ``loader``. Under torchrun each process evaluates its own
    shard of the test set and the sums are added over the processes."""
    model.eval()
    totals = torch.zeros(3, device=device)  # summed loss, correct predictions, samples: no sync per batch
    for images, labels in _progress(loader, "eval", progress):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(images)
        totals[0] += loss_fn(logits.float(), labels) * labels.shape[0]
        totals[1] += (logits.argmax(dim=-1) == labels).sum()
        totals[2] += labels.shape[0]
    total_loss, correct, seen = all_reduce_sum(totals).tolist()
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1)}


@dataclass
class Checkpoints:
    """Where and how often ``fit`` writes its checkpoint: after every ``every``-th epoch and the last, to ``path``,
    with ``extra_state`` stored beside the training state; ``write`` False on every process but the first under
    torchrun."""

    path: str | Path
    every: int = 1
    extra_state: dict = field(default_factory=dict)
    write: bool = True

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"checkpoint every must be >= 1, got {self.every}")


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    epochs: int,
    device: torch.device | str = "cpu",
    loss_fn: nn.Module | None = None,
    seed: int = 0,
    precision: str = "fp32",
    grad_clip: float | None = 1.0,
    batch_transform: Callable | None = None,
    ema: EMA | None = None,
    eval_every: int = 1,
    before_epoch: Callable[[int], None] | None = None,
    checkpoints: Checkpoints | None = None,
    resume: dict | None = None,
    until: int | None = None,
    scaler: torch.amp.GradScaler | None = None,
    rank: int = 0,
    progress: bool = True,
    log: bool = True,
) -> dict[str, list[float]]:
    """Train for ``epochs`` epochs, evaluating after every ``eval_every``-th and the last; returns the history of
    loss, accuracy, lr and time (test entries are None for epochs without evaluation).

    ``loss_fn`` is the training loss (label smoothing, soft targets); the reported test loss is the plain
    cross-entropy. ``batch_transform`` is applied to every training batch on the device (see ``train_one_epoch``);
    ``before_epoch(epoch)`` runs before each epoch (e.g. to change the training resolution). With ``ema`` its
    average is updated after every step and it is what is evaluated. ``rank`` is this process's under torchrun:
    every process draws its own augmentation, mixing and drop-path randomness. ``checkpoints`` says where to write
    (``Checkpoints``); ``resume`` is a checkpoint read with ``checkpoint.load_checkpoint``, from which training
    continues exactly as the uninterrupted run would have; without weights in it (``{"epoch", "history"}``), the
    objects given already hold the state, as after a call with ``until`` (train only up to that epoch) and the same
    ``scaler`` (``budget.fit_planned``, which plans again between the two calls).
    """
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device)
    scaler = scaler or grad_scaler(device, precision)
    history: dict[str, list[float]] = {k: [] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                                                     "lr", "epoch_time")}
    start = 0
    if resume is not None:
        start, history = restore(resume, model, optimizer, scheduler, scaler, ema)
        if log and "model" in resume:
            print(f"resumed from {checkpoints.path if checkpoints else 'the checkpoint'} after epoch {start}")
    evaluated = ema.module if ema is not None else model
    for epoch in range(start, min(until or epochs, epochs)):
        reseed(train_loader, seed, epoch, rank)
        if before_epoch is not None:
            before_epoch(epoch)
        tic = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(model, train_loader, optimizer, scheduler, loss_fn, device, precision, grad_clip,
                                progress, f"epoch {epoch + 1}/{epochs}", batch_transform, scaler, ema=ema)
        last = epoch + 1 == epochs
        test = {"loss": None, "acc": None}
        if (epoch + 1) % eval_every == 0 or last:
            test = evaluate(evaluated, test_loader, nn.CrossEntropyLoss(), device, precision, progress)
        _record(history, epoch + 1, train, test, lr, time.perf_counter() - tic)
        if log:
            parts = [f"epoch {epoch + 1:3d}/{epochs}", f"train loss {train['loss']:.4f} acc {train['acc']:.2%}"]
            if test["acc"] is not None:
                parts.append(f"test loss {test['loss']:.4f} acc {test['acc']:.2%}")
            print("  ".join(parts + [f"lr {lr:.2e}", f"{history['epoch_time'][-1]:.1f} s"]))
        if checkpoints is not None and checkpoints.write and ((epoch + 1) % checkpoints.every == 0 or last):
            save_checkpoint(checkpoints.path, **training_state(model, optimizer, scheduler, scaler, ema),
                            epoch=epoch + 1, history=history, **checkpoints.extra_state)
    return history


def training_state(model: nn.Module, optimizer, scheduler, scaler, ema: EMA | None) -> dict:
    """What a checkpoint holds to continue training. ``model`` is the model that is evaluated (the EMA when there
    is one, so that every reader of a checkpoint gets the reported model); ``train_model`` then the trained one."""
    state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None}
    if ema is None:
        return state | {"model": unwrap(model).state_dict()}
    return state | {"model": ema.module.state_dict(), "train_model": unwrap(model).state_dict(),
                    "ema": {"decay": ema.decay, "updates": ema.updates}}


def restore(state: dict, model: nn.Module, optimizer, scheduler, scaler, ema: EMA | None) -> tuple[int, dict]:
    """Load a checkpoint's training state (``training_state``) into the run's objects; returns (epoch, history). A
    state without weights only says where the run is (the objects hold the rest: ``fit``'s ``until``)."""
    if "model" not in state:
        return state["epoch"], state["history"]
    unwrap(model).load_state_dict(state.get("train_model", state["model"]))
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if ema is not None:
        ema.module.load_state_dict(state["model"])
        ema.updates = state.get("ema", {}).get("updates", 0)
    return state["epoch"], state["history"]


def reseed(loader, seed: int, epoch: int, rank: int = 0) -> None:
    """Make epoch ``epoch`` depend only on (seed, epoch, rank), so that a resumed run continues exactly: the global
    RNG (augmentation, mixing, drop path: each process its own, as nanoGPT's seed + rank) and the loader's
    ``set_epoch(seed, epoch, rank)`` (``data.SeededLoader``, ``augment.DeviceLoader``: a shuffle shared by all
    processes, each taking its own shard)."""
    set_seed(rank_seed(epoch_seed(seed, epoch), rank))
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(seed, epoch, rank)


def _record(history: dict, epoch: int, train: dict, test: dict, lr: float, seconds: float) -> None:
    for key, value in (("epoch", epoch), ("train_loss", train["loss"]), ("train_acc", train["acc"]),
                       ("test_loss", test["loss"]), ("test_acc", test["acc"]), ("lr", lr), ("epoch_time", seconds)):
        history[key].append(value)


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts [true class, predicted class] for integer ``predictions`` and ``targets``."""
    index = targets.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)
