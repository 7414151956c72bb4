"""The training loop: a ``Run`` (model, data, optimiser, loss, precision) and ``fit``, which trains it until its
``Progress`` reaches 1, with evaluation, checkpoints and exact resume.

Every epoch reseeds the global RNG and the training loader from (seed, epoch, rank), so a run resumed from the
checkpoint of epoch k continues exactly as the uninterrupted run would (tests/test_engine.py checks it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm import tqdm

from ..data.augment import BatchMixing, batch_mixing
from ..distributed import all_reduce_sum, epoch_seed, rank_seed
from ..weights.checkpoint import save_checkpoint
from .optim import build_optimizer
from .precision import autocast, grad_scaler
from .schedule import Progress, lr_factor

if TYPE_CHECKING:  # for the annotations only: the loop reads a config, it needs no module of it
    from .config import TrainConfig

PROGRESS_INTERVAL = 2.0  # seconds between progress-bar updates: keeps notebook outputs small
HISTORY = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time", "steps", "low_res_steps")


def set_seed(seed: int) -> None:
    """Seed Python's and PyTorch's RNGs (CPU and every GPU)."""
    random.seed(seed)
    torch.manual_seed(seed)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel or torch.compile wrapper."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


@dataclass
class Run:
    """One training run: what ``fit`` trains and how. ``Run.create`` builds the optimiser, loss and MixUp/CutMix
    that ``config`` asks for; ``checkpoint`` (None: none) is where ``fit`` writes, with ``stored`` beside the
    training state; ``rank`` is this process's under torchrun (only rank 0 writes and logs)."""

    config: TrainConfig
    model: nn.Module  # as it trains: wrapped by DistributedDataParallel or torch.compile when asked
    train_loader: Iterable
    test_loader: Iterable
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    precision: str = "fp32"
    mixing: BatchMixing | None = None
    rank: int = 0
    checkpoint: Path | None = None
    stored: dict = field(default_factory=dict)
    log: bool = True
    progress_bar: bool = False

    @classmethod
    def create(cls, config: TrainConfig, model: nn.Module, loaders: tuple[Iterable, Iterable],
               device: torch.device | str, precision: str = "fp32", num_classes: int | None = None) -> Run:
        """A run of ``model`` on ``loaders`` (train, test) with ``config``'s recipe: optimiser, label-smoothed
        loss, and MixUp/CutMix when asked (for ``num_classes``)."""
        optimizer = build_optimizer(unwrap(model), config.lr, config.weight_decay, optimizer=config.optimizer,
                                    precision=precision)
        mixing = batch_mixing(num_classes, config.mixup, config.cutmix) if num_classes else None
        return cls(config, model, *loaders, optimizer, nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
                   torch.device(device), precision, mixing, progress_bar=config.progress)

    def steps(self) -> int:
        """The steps of ``config.epochs`` epochs (what ``--epochs`` trains)."""
        return self.config.epochs * len(self.train_loader)

    def warmup_steps(self) -> int:
        return int(self.config.warmup_epochs * len(self.train_loader))


def train_step(run: Run, images: torch.Tensor, labels: torch.Tensor, scaler) -> tuple[torch.Tensor, ...]:
    """One optimiser step on a batch: forward (in the run's precision), loss, backward, clipping, step. Returns
    (loss, logits, hard labels) for the epoch's statistics."""
    images, labels = images.to(run.device, non_blocking=True), labels.to(run.device, non_blocking=True)
    targets = labels
    if run.mixing is not None and run.mixing.active:
        images, targets = run.mixing(images, labels)  # soft targets; accuracy counts the larger share
        labels = targets.argmax(dim=-1)
    with autocast(run.device, run.precision):
        logits = run.model(images)
        loss = run.loss_fn(logits, targets)
    run.optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if run.config.grad_clip:
        scaler.unscale_(run.optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    scaler.step(run.optimizer)
    scaler.update()
    return loss.detach(), logits.detach(), labels


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: torch.device, precision: str = "fp32") -> dict[str, float]:
    """Mean cross-entropy and accuracy (fraction) of ``model`` on ``loader``; under torchrun each process evaluates
    its shard and the sums are added over the processes."""
    model.eval()
    totals = torch.zeros(3, device=device)  # summed loss, correct predictions, samples: no sync per batch
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(images)
        totals += torch.stack([nn.functional.cross_entropy(logits.float(), labels, reduction="sum"),
                               (logits.argmax(-1) == labels).sum(), torch.tensor(len(labels), device=device)])
    loss, correct, seen = all_reduce_sum(totals).tolist()
    return {"loss": loss / max(seen, 1), "acc": correct / max(seen, 1)}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device,
            precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities [N, classes] and targets [N] for every sample of ``loader`` (on the CPU)."""
    model.eval()
    probs, targets = [], []
    for images, labels in loader:
        with autocast(device, precision):
            logits = model(images.to(device, non_blocking=True))
        probs.append(logits.float().softmax(dim=-1).cpu())
        targets.append(labels.cpu())
    return torch.cat(probs), torch.cat(targets)


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts [true class, predicted class] for integer ``predictions`` and ``targets``."""
    index = targets.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def set_phase(run: Run, p: float) -> bool:
    """The recipe's phases at progress ``p``: images of ``low_res_size`` pixels while p < ``low_res_fraction``
    (the loader resizes them, the model interpolates its position embeddings: Sec. 3.2), MixUp/CutMix while
    p < ``mixing_fraction``. Returns whether this step trains at low resolution."""
    config = run.config
    low_res = bool(config.low_res_size) and p < config.low_res_fraction
    if config.low_res_size:
        run.train_loader.image_size = config.low_res_size if low_res else None
    if run.mixing is not None:
        run.mixing.active = p < config.mixing_fraction
    return low_res


def fit(run: Run, progress: Progress, resume: dict | None = None) -> dict[str, list]:
    """Train ``run`` until ``progress`` reaches 1, evaluating after every ``eval_every``-th epoch and the last;
    returns the history (one entry per epoch; test entries None without an evaluation). ``resume``: a checkpoint
    written by this function, from which training continues exactly as the uninterrupted run would have."""
    config, model, loader = run.config, run.model, run.train_loader
    scaler = grad_scaler(run.device, run.precision)
    history = {key: [] for key in HISTORY}
    epoch = step = 0
    warmup_end = 1.0  # the progress at the end of the warm-up, where the decay starts (known once reached)
    if resume is not None:
        epoch, step, warmup_end, history = restore(run, scaler, resume)
        progress.start(resume["seconds"])
    done = progress(step) >= 1
    while not done:
        reseed(loader, config.seed, epoch, run.rank)
        p = progress(step)
        low_res = set_phase(run, p)  # each step's phase is set before its batch is drawn (at the phase's size)
        tic, first_step, low_res_steps, lr = time.perf_counter(), step, 0, None
        totals = torch.zeros(3, device=run.device)  # summed loss, correct predictions, samples
        model.train()
        for images, labels in tqdm(loader, f"epoch {epoch + 1}", leave=False, disable=not run.progress_bar,
                                   mininterval=PROGRESS_INTERVAL):
            if p >= 1:
                break
            low_res_steps += low_res
            warmup_end = p if step == run.warmup_steps() else warmup_end
            lr = config.lr * lr_factor(p, step, run.warmup_steps(), warmup_end, config.decay)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            loss, logits, labels = train_step(run, images, labels, scaler)
            totals += torch.stack([loss.float() * len(labels), (logits.argmax(-1) == labels).sum(),
                                   torch.tensor(len(labels), device=run.device)])
            step += 1
            p = progress(step)
            low_res = set_phase(run, p)
        epoch += 1
        done = progress(step) >= 1  # read once: the epoch that ends the run is the one evaluated as the last
        test = {"loss": None, "acc": None}
        if epoch % config.eval_every == 0 or done:
            test = evaluate(model, run.test_loader, run.device, run.precision)
            done = progress(step) >= 1  # a budget that runs out during the evaluation ends the run here
        loss, correct, seen = all_reduce_sum(totals).tolist()
        record = (epoch, loss / max(seen, 1), correct / max(seen, 1), test["loss"], test["acc"], lr,
                  time.perf_counter() - tic, step - first_step, low_res_steps)
        for key, value in zip(HISTORY, record):
            history[key].append(value)
        if run.log and run.rank == 0:
            print(describe_epoch(history))
        if run.checkpoint is not None and run.rank == 0 and (epoch % config.save_every == 0 or done):
            save_checkpoint(run.checkpoint, model=unwrap(model).state_dict(), optimizer=run.optimizer.state_dict(),
                            scaler=scaler.state_dict(), epoch=epoch, step=step, warmup_end=warmup_end,
                            seconds=progress.elapsed(), budget_seconds=progress.seconds, history=history,
                            **run.stored)
    return history


def describe_epoch(history: dict[str, list]) -> str:
    """One line for the last epoch of ``history``."""
    last = {key: values[-1] for key, values in history.items()}
    parts = [f"epoch {last['epoch']:3d}", f"train loss {last['train_loss']:.4f} acc {last['train_acc']:.2%}"]
    if last["test_acc"] is not None:
        parts.append(f"test loss {last['test_loss']:.4f} acc {last['test_acc']:.2%}")
    low = f", {last['low_res_steps']} of {last['steps']} steps at low resolution" if last["low_res_steps"] else ""
    return "  ".join(parts + [f"lr {last['lr'] or 0:.2e}", f"{last['epoch_time']:.1f} s{low}"])


def restore(run: Run, scaler, state: dict) -> tuple[int, int, float, dict]:
    """Load a checkpoint of ``fit`` into the run's model, optimiser and ``scaler``; returns (epoch, step, progress
    at the warm-up's end, history)."""
    unwrap(run.model).load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    if run.log and run.rank == 0:
        print(f"resumed after epoch {state['epoch']} (step {state['step']})")
    return state["epoch"], state["step"], state["warmup_end"], state["history"]


def reseed(loader, seed: int, epoch: int, rank: int = 0) -> None:
    """Make epoch ``epoch`` depend only on (seed, epoch, rank), so that a resumed run continues exactly: the global
    RNG (augmentation, mixing, drop path: each process its own, as nanoGPT's seed + rank) and the loader's
    ``set_epoch(seed, epoch, rank)`` (``data.SeededLoader``, ``augment.DeviceLoader``: a shuffle shared by all
    processes, each taking its own shard)."""
    set_seed(rank_seed(epoch_seed(seed, epoch), rank))
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(seed, epoch, rank)
