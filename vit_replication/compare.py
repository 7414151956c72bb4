"""Fair comparisons of architectures: every variant is built right after the same ``set_seed`` and trained by the
same ``engine.fit`` on the same loaders, for the same epochs, with the same optimiser and schedule.
Notebooks 07-10 use it to put a variant beside the plain ViT.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .augment import DeviceLoader, device_loaders
from .data import load_datasets, normalization, subset
from .engine import fit, set_seed
from .model import count_parameters
from .optim import training_setup
from .timing import seconds_per_step


def comparison_loaders(
    dataset: str, data_dir: str, train_size: int | None, test_size: int | None, batch_size: int,
    device: torch.device, seed: int = 0,
) -> tuple[DeviceLoader, DeviceLoader, list[str]]:
    """32x32 training and test loaders held on ``device`` (random crop + flip done there), and the class names.

    ``dataset``/``data_dir`` are as in ``data.load_datasets`` (offline: the synthetic shapes after one line saying
    why); ``train_size``/``test_size`` pick fixed random subsets (None: everything).
    """
    sizes = (train_size or 5000, test_size or 1000)
    train_set, test_set, classes = load_datasets(dataset, data_dir, 32, None, None, synthetic_sizes=sizes, seed=seed)
    train_set, test_set = subset(train_set, train_size, seed), subset(test_set, test_size, seed)
    train_loader, test_loader = device_loaders(train_set, test_set, batch_size, *normalization(dataset, train_set),
                                               device, seed)
    return train_loader, test_loader, classes


def train_variant(
    name: str,
    build: Callable[[], nn.Module],
    train_loader: Iterable,
    test_loader: Iterable,
    epochs: int,
    lr: float,
    device: torch.device,
    seed: int = 0,
    weight_decay: float = 0.05,
    warmup_epochs: int = 1,
    label_smoothing: float = 0.1,
    progress: bool = True,
) -> dict:
    """Seed, build, train and evaluate one variant; returns its name, model, parameter count, history and times."""
    set_seed(seed)
    model = build().to(device)
    optimizer, scheduler, loss_fn = training_setup(model, lr, epochs, len(train_loader), warmup_epochs,
                                                   weight_decay, label_smoothing)
    print(f"{name}: {count_parameters(model):,} parameters")
    tic = time.perf_counter()
    history = fit(model, train_loader, test_loader, optimizer, scheduler, epochs, device, loss_fn, seed,
                  progress=progress)
    return {
        "name": name, "model": model.eval(), "parameters": count_parameters(model), "history": history,
        "seconds": time.perf_counter() - tic, "test_acc": history["test_acc"][-1],
        # training images per second of wall time, the per-epoch evaluation included
        "train_images_per_s": len(train_loader) * train_loader.batch_size * epochs / sum(history["epoch_time"]),
    }


@torch.no_grad()
def inference_throughput(model: nn.Module, images: torch.Tensor, repeats: int = 3, warmup: int = 1) -> float:
    """Images per second of ``model`` on the batch ``images`` (best of ``repeats`` timed passes)."""
    model.eval()
    run = lambda n: [model(images) for _ in range(n)]  # noqa: E731
    best = min(seconds_per_step(run, images.device, warmup if i == 0 else 0, 1) for i in range(repeats))
    return images.shape[0] / best


def summary_table(results: list[dict]) -> str:
    """One line per variant: parameters, final and best test accuracy, training time and speed."""
    lines = [f"{'variant':<24}{'params':>11}{'test acc':>10}{'best':>8}{'train s':>9}{'img/s':>8}"]
    for r in results:
        lines.append(f"{r['name']:<24}{r['parameters']:>11,}{r['test_acc']:>10.2%}{max(r['history']['test_acc']):>8.2%}"
                     f"{sum(r['history']['epoch_time']):>9.0f}{r['train_images_per_s']:>8.0f}")
    return "\n".join(lines)
