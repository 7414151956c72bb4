"""Fair comparisons of architectures: every variant is built right after the same ``set_seed`` and trained by the
same ``training.loop.fit`` on the same loaders, for the same epochs, with the same optimiser and schedule (one run:
``variant.train_variant``), once per seed; the expected time of a comparison before it starts, and the statistics
of its result. Notebooks 07-10 use it to put a variant beside the plain ViT.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import islice

import torch
from torch import nn

from ..data.augment import DeviceLoader
from ..data.pipeline import run_data
from ..training.config import TrainConfig
from ..training.loop import Run, evaluate, train_step
from ..training.precision import grad_scaler
from ..training.timing import seconds_per_step
from ..training.variant import build_for, check_comparable, train_variant
from .stats import mean_std, welch_t_test

__all__ = ["build_for", "check_comparable", "train_variant"]  # one run, re-exported beside the comparisons


def comparison_loaders(recipe: TrainConfig, device: torch.device, image_size: int = 32
                       ) -> tuple[DeviceLoader, DeviceLoader, list[str]]:
    """Training and test loaders of ``image_size`` pixels held on ``device`` (random crop + flip done there), and
    the class names, for the data of ``recipe`` (``dataset``, ``data_dir``, ``train_size``, ``test_size``,
    ``batch_size``; offline, the synthetic shapes after one line saying why). Built by ``pipeline.run_data``, as
    every run's data is; the images are decoded and held once, for every variant and seed."""
    data = run_data(replace(recipe, loader="device", randaugment=False), image_size, device)
    return data.train_loader, data.test_loader, data.classes


def train_seeds(name: str, build: Callable[[], nn.Module], loaders: tuple, recipe: TrainConfig,
                device: torch.device, seeds: Iterable[int], precision: str = "fp32") -> list[dict]:
    """``train_variant`` once per seed (initial weights, data order and augmentation all follow the seed), with one
    line per run instead of one per epoch."""
    runs = []
    for seed in seeds:
        run = train_variant(name, build, loaders, replace(recipe, seed=seed), device, precision, log=False)
        print(f"{name:<18} seed {seed}: {run['test_acc']:.2%} test accuracy, {run['seconds']:.0f} s")
        runs.append(run)
    return runs


def expected_seconds(build: Callable[[], nn.Module], loaders: tuple, recipe: TrainConfig, device: torch.device,
                     precision: str = "fp32", steps: int = 3) -> float:
    """Seconds one ``train_variant`` run of ``build`` under ``recipe`` is expected to take on this machine:
    ``steps`` training steps of a throwaway copy timed at each of the recipe's image sizes (after a warm-up step),
    times the steps at that size, plus the evaluations. A plan to print before a long cell, not a budget."""
    run = Run.create(recipe, build_for(build, recipe, device), loaders, device, precision)
    train_loader, test_loader = loaders
    scaler, seconds = grad_scaler(device, precision), 0.0
    phases = [(recipe.low_res_size, recipe.low_res_fraction), (None, 1 - recipe.low_res_fraction)] \
        if recipe.low_res_size else [(None, 1.0)]
    for size, share in phases:
        train_loader.image_size = size
        batch = next(iter(train_loader))
        step = seconds_per_step(lambda n, b=batch: [train_step(run, *b, scaler) for _ in range(n)], device, 1, steps)
        seconds += step * share * run.steps()
    train_loader.image_size = None
    batches = min(steps, len(test_loader))  # a test set of fewer batches is timed over all of them
    evaluation = seconds_per_step(lambda n: evaluate(run.model, islice(test_loader, n), device, precision), device,
                                  1, batches) * len(test_loader)
    return seconds + math.ceil(recipe.epochs / recipe.eval_every) * evaluation


def describe_plan(expected: dict[str, float], seeds: Iterable[int], epochs: int) -> str:
    """One line for the plan of a comparison: the runs, each variant's expected minutes a run (``expected``, from
    ``expected_seconds``), and the total."""
    seeds = list(seeds)
    each = ", ".join(f"{name} {seconds / 60:.1f}" for name, seconds in expected.items())
    total = len(seeds) * sum(expected.values())
    return (f"{len(expected) * len(seeds)} runs ({len(expected)} variants x {len(seeds)} seeds) of {epochs} epochs; "
            f"expected minutes a run: {each}; about {total / 60:.0f} minutes in all on this machine")


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
    """Images per second of ``model`` on the batch ``images`` (best of ``repeats`` timed passes), in eval mode
    without autograd, as a model is used for inference (and as ``tome.ToMeViT`` runs in any case)."""
    model.eval()
    run = lambda n: [model(images) for _ in range(n)]  # noqa: E731
    with torch.no_grad():  # no graph for a backward pass that never comes
        best = min(seconds_per_step(run, images.device, warmup if i == 0 else 0, 1) for i in range(repeats))
    return images.shape[0] / best
