"""Fair comparisons of architectures: every variant is built right after the same ``set_seed`` and trained by the
same ``engine.fit`` on the same loaders, for the same epochs, with the same optimiser and schedule.
Notebooks 07-10 use it to put a variant beside the plain ViT.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .augment import DeviceLoader
from .engine import fit, set_seed
from .model import count_parameters
from .optim import training_setup
from .pipeline import run_data
from .recipe import TrainConfig
from .stats import mean_std, welch_t_test
from .timing import seconds_per_step


def comparison_loaders(
    dataset: str, data_dir: str, train_size: int | None, test_size: int | None, batch_size: int,
    device: torch.device, seed: int = 0,
) -> tuple[DeviceLoader, DeviceLoader, list[str]]:
    """32x32 training and test loaders held on ``device`` (random crop + flip done there), and the class names.

    ``dataset``/``data_dir`` are as in ``data.load_datasets`` (offline: the synthetic shapes after one line saying
    why); ``train_size``/``test_size`` pick fixed random subsets (None: everything). Built by ``pipeline.run_data``,
    as every run's data is.
    """
    config = TrainConfig(dataset=dataset, data_dir=data_dir, train_size=train_size, test_size=test_size,
                         batch_size=batch_size, loader="device", randaugment=False, seed=seed)
    data = run_data(config, 32, device)
    return data.train_loader, data.test_loader, data.classes


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
    warmup_epochs: float = 1,
    label_smoothing: float = 0.1,
    progress: bool = True,
    precision: str = "fp32",
    log: bool = True,
    eval_every: int = 1,
) -> dict:
    """Seed, build, train and evaluate one variant; returns its name, seed, model, parameter count, history and
    times. ``log``: a line per epoch (else none); ``precision`` as in ``engine.fit``."""
    set_seed(seed)
    model = build().to(device)
    optimizer, scheduler, loss_fn = training_setup(model, lr, epochs, len(train_loader), warmup_epochs,
                                                   weight_decay, label_smoothing)
    if log:
        print(f"{name}: {count_parameters(model):,} parameters")
    tic = time.perf_counter()
    history = fit(model, train_loader, test_loader, optimizer=optimizer, scheduler=scheduler, epochs=epochs,
                  device=device, loss_fn=loss_fn, seed=seed, precision=precision, progress=progress, log=log,
                  eval_every=eval_every)
    return {
        "name": name, "seed": seed, "model": model.eval(), "parameters": count_parameters(model), "history": history,
        "seconds": time.perf_counter() - tic, "test_acc": history["test_acc"][-1],
        # training images per second of wall time, the per-epoch evaluation included
        "train_images_per_s": len(train_loader) * train_loader.batch_size * epochs / sum(history["epoch_time"]),
    }


def train_seeds(name: str, build: Callable[[], nn.Module], train_loader, test_loader, epochs: int, lr: float,
                device: torch.device, seeds: Iterable[int], **options) -> list[dict]:
    """``train_variant`` once per seed (initial weights, data order and augmentation all follow the seed), with one
    line per run instead of one per epoch (and no progress bars unless ``progress=True``)."""
    runs, options = [], {"progress": False} | options
    for seed in seeds:
        run = train_variant(name, build, train_loader, test_loader, epochs, lr, device, seed, log=False, **options)
        print(f"{name:<18} seed {seed}: {run['test_acc']:.2%} test accuracy, {run['seconds']:.0f} s")
        runs.append(run)
    return runs


def difference(runs_a: list[dict], runs_b: list[dict]) -> tuple[float, float]:
    """(mean test accuracy of b minus a, its standard error sqrt(s_a^2/n_a + s_b^2/n_b)), in accuracy units."""
    (mean_a, std_a), (mean_b, std_b) = (mean_std(r["test_acc"] for r in runs) for runs in (runs_a, runs_b))
    return mean_b - mean_a, (std_a ** 2 / len(runs_a) + std_b ** 2 / len(runs_b)) ** 0.5


def describe_difference(name_a: str, runs_a: list[dict], name_b: str, runs_b: list[dict], alpha: float = 0.05) -> str:
    """One line: the difference of the mean test accuracies with its standard error, Welch's t-test of it (the
    test for a few seeds per arm with unequal spreads), and a verdict worded by what the test supports: with 3 seeds
    a side only a large, consistent difference reaches p < ``alpha``; otherwise no difference is detectable at this
    budget, which is a result, not a proof that there is none."""
    delta, error = difference(runs_a, runs_b)
    _, df, p = welch_t_test([r["test_acc"] for r in runs_a], [r["test_acc"] for r in runs_b])
    verdict = (f"a difference unlikely to be seed noise (p < {alpha:g})" if p < alpha else
               f"no difference detectable with these seeds at this budget (p >= {alpha:g})")
    return (f"{name_b} vs {name_a}: {100 * delta:+.2f} ± {100 * error:.2f} points (mean ± standard error) over "
            f"{len(runs_a)} and {len(runs_b)} seeds; Welch's t-test p = {p:.3f} ({df:.1f} degrees of freedom): "
            f"{verdict}")


def seeds_table(groups: dict[str, list[dict]]) -> str:
    """One line per variant: parameters, mean ± std of the final test accuracy over its seeds, each seed's value,
    and the mean training time."""
    lines = [f"{'variant':<20}{'params':>11}{'test acc, mean ± std':>24}  {'per seed':<26}{'train s':>8}"]
    for name, runs in groups.items():
        mean, std = mean_std(r["test_acc"] for r in runs)
        seconds = statistics.mean(sum(r["history"]["epoch_time"]) for r in runs)
        each = " ".join(f"{100 * r['test_acc']:.2f}" for r in runs)
        lines.append(f"{name:<20}{runs[0]['parameters']:>11,}{100 * mean:>16.2f} ± {100 * std:<5.2f}  {each:<26}"
                     f"{seconds:>8.0f}")
    return "\n".join(lines)


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
