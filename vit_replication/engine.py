"""Training and evaluation: AdamW, linear warm-up + cosine decay, label smoothing, gradient clipping,
mixed precision on CUDA, per-epoch history, atomic checkpoints and exact resume.

Every epoch reseeds the global RNG and the training loader's generator from (seed, epoch), so a run resumed from
the checkpoint of epoch k continues exactly as the uninterrupted run would (tests/test_engine.py checks it).
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .distributed import all_reduce_sum

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


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05, betas=(0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on biases, LayerNorms, class token, positions)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.ndim >= 2 and name.endswith("weight")  # Linear and Conv2d weights
        (decay if is_matrix else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = all(p.is_cuda for p in decay + no_decay) and bool(decay + no_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly over ``warmup_steps``, then following a cosine to ``min_lr_ratio`` x peak."""
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}"
        )

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (no loss scaling needed); a no-op on CPU or when disabled."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    loss_fn: nn.Module,
    device: torch.device,
    amp: bool = True,
    grad_clip: float | None = 1.0,
    progress: bool = True,
    description: str = "train",
    batch_transform: Callable | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and accuracy (fraction) over the samples seen.

    ``batch_transform`` (e.g. ``augment.batch_mixing``) maps (images, labels) on the device to (images, targets);
    with soft targets [B, classes] a prediction counts as correct when it is the class with the largest share.
    """
    model.train()
    totals = torch.zeros(3, device=device)  # summed loss, correct predictions, samples: kept on the device
    for images, labels in _progress(loader, description, progress):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if batch_transform is not None:
            images, targets = batch_transform(images, labels)
            labels = targets.argmax(dim=-1) if targets.ndim == 2 else targets
        else:
            targets = labels
        with autocast(device, amp):
            logits = model(images)
            loss = loss_fn(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        totals[0] += loss.detach().float() * labels.shape[0]
        totals[1] += (logits.argmax(dim=-1) == labels).sum()
        totals[2] += labels.shape[0]
    total_loss, correct, seen = all_reduce_sum(totals).tolist()  # summed over processes under torchrun
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1)}


@torch.no_grad()
def predict(
    model: nn.Module, loader: DataLoader, device: torch.device, amp: bool = True, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities [N, classes] and targets [N] for every sample of ``loader`` (on the CPU)."""
    model.eval()
    probs, targets = [], []
    for images, labels in _progress(loader, "predict", progress):
        with autocast(device, amp):
            logits = model(images.to(device, non_blocking=True))
        probs.append(logits.float().softmax(dim=-1).cpu())
        targets.append(labels)
    return torch.cat(probs), torch.cat(targets)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, loss_fn: nn.Module, device: torch.device, amp: bool = True,
    progress: bool = True,
) -> dict[str, float]:
    """Mean loss and accuracy (fraction) of ``model`` on ``loader``. Under torchrun each process evaluates its own
    shard of the test set and the sums are added over the processes."""
    model.eval()
    totals = torch.zeros(3, device=device)  # summed loss, correct predictions, samples: no sync per batch
    for images, labels in _progress(loader, "eval", progress):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(images)
        totals[0] += loss_fn(logits.float(), labels) * labels.shape[0]
        totals[1] += (logits.argmax(dim=-1) == labels).sum()
        totals[2] += labels.shape[0]
    total_loss, correct, seen = all_reduce_sum(totals).tolist()
    return {"loss": total_loss / max(seen, 1), "acc": correct / max(seen, 1)}


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
    amp: bool = True,
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
        lambda n: train_one_epoch(model, batches(train_loader, n), optimizer, None, loss_fn, device, amp, grad_clip,
                                  False, batch_transform=batch_transform),
        device, warmup, steps)
    # evaluation warms up over the whole test set, so its last, smaller batch is compiled too
    eval_step = seconds_per_step(lambda n: evaluate(model, batches(test_loader, n), loss_fn, device, amp, False),
                                 device, max(warmup, len(test_loader)), steps)
    unwrap(model).load_state_dict(weights)
    optimizer.load_state_dict(optimizer_state)
    return train_step, eval_step


def save_checkpoint(path: str | Path, **state) -> None:
    """Write ``state`` with torch.save to a temporary file, then rename it over ``path`` (atomic on POSIX):
    an interrupted save never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=False)


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    epochs: int,
    device: torch.device,
    loss_fn: nn.Module | None = None,
    seed: int = 0,
    amp: bool = True,
    grad_clip: float | None = 1.0,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log: bool = True,
    extra_state: dict | None = None,
    write_checkpoints: bool = True,
    batch_transform: Callable | None = None,
    checkpoint_every: int = 1,
) -> dict[str, list[float]]:
    """Train for ``epochs`` epochs, evaluating after each; returns the history of loss, accuracy, lr and time.
    ``batch_transform`` is applied to every training batch on the device (see ``train_one_epoch``).

    With ``checkpoint_path`` a checkpoint is written after every ``checkpoint_every``-th epoch and the last (unless
    ``write_checkpoints`` is False, as on every process but the first under torchrun); with ``resume`` training
    continues from it.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {k: [] for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                                                     "lr", "epoch_time")}
    start = 0
    if resume:
        if checkpoint_path is None:
            raise ValueError("resume=True needs a checkpoint_path")
        state = load_checkpoint(checkpoint_path, map_location=device)
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        start, history = state["epoch"], state["history"]
        if log:
            print(f"resumed from {checkpoint_path} after epoch {start}")
    for epoch in range(start, epochs):
        _reseed(seed, epoch, train_loader)
        tic = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train = train_one_epoch(model, train_loader, optimizer, scheduler, loss_fn, device, amp, grad_clip,
                                progress, f"epoch {epoch + 1}/{epochs}", batch_transform)
        test = evaluate(model, test_loader, loss_fn, device, amp, progress)
        _record(history, epoch + 1, train, test, lr, time.perf_counter() - tic)
        if log:
            print(f"epoch {epoch + 1:3d}/{epochs}  train loss {train['loss']:.4f} acc {train['acc']:.2%}  "
                  f"test loss {test['loss']:.4f} acc {test['acc']:.2%}  lr {lr:.2e}  {history['epoch_time'][-1]:.1f} s")
        due = (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs
        if checkpoint_path is not None and write_checkpoints and due:
            save_checkpoint(
                checkpoint_path, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict() if scheduler is not None else None, epoch=epoch + 1,
                history=history, **(extra_state or {}),
            )
    return history


def _reseed(seed: int, epoch: int, loader: DataLoader) -> None:
    """Make epoch ``epoch`` depend only on (seed, epoch): shuffling, augmentation, dropout."""
    set_seed(seed * 1000 + epoch)
    if getattr(loader, "generator", None) is not None:
        loader.generator.manual_seed(seed * 1000 + epoch)
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)


def _record(history: dict, epoch: int, train: dict, test: dict, lr: float, seconds: float) -> None:
    for key, value in (("epoch", epoch), ("train_loss", train["loss"]), ("train_acc", train["acc"]),
                       ("test_loss", test["loss"]), ("test_acc", test["acc"]), ("lr", lr), ("epoch_time", seconds)):
        history[key].append(value)


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts [true class, predicted class] for integer ``predictions`` and ``targets``."""
    index = targets.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)
