"""Figures for the notebooks and the training script; every function returns a matplotlib Figure."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from torchvision.transforms.v2.functional import pil_to_tensor

from ..model.pooling import check_pool
from .attention_maps import position_similarity, upsample_maps
from .stats import mean_se, mean_std


def to_display(image, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
    """A PIL image or [3, H, W] tensor (uint8, or float normalised with ``mean``/``std``) as an
    [H, W, 3] array in [0, 1]."""
    image = image.detach().cpu() if torch.is_tensor(image) else pil_to_tensor(image.convert("RGB"))
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    if mean is not None and std is not None:
        image = image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def _finish(fig: Figure, *grid: plt.Axes) -> Figure:
    """Light grid lines on the ``grid`` axes, then a tight layout."""
    for ax in grid:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _image_grid(nrows: int, ncols: int, width: float, height: float):
    """(fig, axes [nrows, ncols]) for images: panels of ``width`` x ``height`` inches, every axis off."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def show_patches(image: torch.Tensor, patch_size: int, mean=None, std=None) -> Figure:
    """The image beside its P x P patches laid out on their grid (the input of Eq. 1)."""
    pixels = to_display(image, mean, std)
    grid = pixels.shape[0] // patch_size
    fig = plt.figure(figsize=(9, 4.2))
    left = fig.add_subplot(1, 2, 1)
    left.imshow(pixels)
    left.set_title(f"image {pixels.shape[0]}x{pixels.shape[1]}")
    left.axis("off")
    sub = fig.add_gridspec(grid, grid, left=0.53, right=0.97, wspace=0.08, hspace=0.08)
    for row in range(grid):
        for col in range(grid):
            ax = fig.add_subplot(sub[row, col])
            ax.imshow(pixels[row * patch_size:(row + 1) * patch_size, col * patch_size:(col + 1) * patch_size])
            ax.axis("off")
    fig.suptitle(f"{grid * grid} patches of {patch_size}x{patch_size} pixels")
    return fig


def plot_history(history: dict[str, list]) -> Figure:
    """Loss and accuracy per epoch, train and test (None where an epoch had no evaluation); a dashed
    line marks the end of a low-resolution phase (``history["low_res_steps"]``, where recorded)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    low, steps = history.get("low_res_steps"), history.get("steps")
    if low and any(low) and sum(low) < sum(steps):
        end = sum(n / s for n, s in zip(low, steps) if s)  # in epochs: the low-resolution steps come first
        for ax in (loss_ax, acc_ax):
            ax.axvline(end + 0.5, color="grey", linestyle="--", linewidth=1, label="low resolution ends")
    for split in ("train", "test"):
        points = [(e, loss, acc) for e, loss, acc in zip(history["epoch"], history[f"{split}_loss"],
                                                         history[f"{split}_acc"]) if acc is not None]
        epochs, losses, accs = zip(*points) if points else ((), (), ())
        loss_ax.plot(epochs, losses, marker="o", label=split)
        acc_ax.plot(epochs, [100 * a for a in accs], marker="o", label=split)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    loss_ax.legend()
    acc_ax.legend()
    return _finish(fig, loss_ax, acc_ax)


def plot_predictions(images: torch.Tensor, targets: torch.Tensor, probs: torch.Tensor, class_names: Sequence[str],
                     mean=None, std=None, ncols: int = 6) -> Figure:
    """A grid of images titled 'true / predicted (probability)', green when right and red when wrong."""
    fig, axes = _image_grid(-(-len(images) // ncols), ncols, 2.1, 2.4)
    confidence, predicted = probs.max(dim=-1)
    for i, ax in zip(range(len(images)), axes.flat):
        ax.imshow(to_display(images[i], mean, std))
        ax.set_title(f"{class_names[targets[i]]}\n→ {class_names[predicted[i]]} ({confidence[i]:.0%})",
                     fontsize=9, color="green" if predicted[i] == targets[i] else "red")
    return _finish(fig)


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """Counts in each cell; rows are true classes, columns predictions."""
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    threshold = matrix.max().item() / 2
    for i in range(k):
        for j in range(k):
            value = int(matrix[i, j])
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8,
                    color="white" if value > threshold else "black")
    return _finish(fig)


def plot_attention_heads(image: torch.Tensor, head_maps: torch.Tensor, mean=None, std=None,
                         layer: int | None = None, pool: str = "cls") -> Figure:
    """The image, then each head's map [heads, g, g] (``attention_maps.cls_attention``) on one
    colour scale from 0 to the largest weight of any head, so a near-uniform head looks flat beside
    a sharp one; the colour bar marks uniform attention, 1 / g^2."""
    check_pool(pool)
    pixels = to_display(image, mean, std)
    maps = upsample_maps(head_maps, pixels.shape[0]).numpy()
    top = float(head_maps.max())
    ncols = len(maps) + 1
    fig, axes = plt.subplots(1, ncols, figsize=(1.9 * ncols + 0.8, 2.3))
    axes[0].imshow(pixels)
    axes[0].set_title("image", fontsize=9)
    for h, ax in enumerate(axes[1:]):
        ax.imshow(pixels)
        shown = ax.imshow(maps[h], cmap="inferno", alpha=0.65, vmin=0, vmax=top)
        ax.set_title(f"head {h + 1}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    bar = fig.colorbar(shown, ax=axes, shrink=0.8, label="attention weight")
    bar.ax.axhline(1 / head_maps[0].numel(), color="white", linewidth=1.5)
    where = f"layer {layer}" if layer is not None else "last layer"
    reader = "class-token attention" if pool == "cls" else "mean attention of the patch tokens"
    fig.suptitle(f"{reader} per head, {where} (white line on the bar: uniform)", fontsize=10)
    return fig


def plot_rollout(images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str] | None = None,
                 mean=None, std=None) -> Figure:
    """Each image above itself under a heat overlay of its rollout map [g, g], scaled to its maximum
    (rollout's scale differs between images), all on one colour scale."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.0 * n + 0.8, 4.3), squeeze=False)
    for i in range(n):
        pixels = to_display(images[i], mean, std)
        up = upsample_maps(maps[i] / maps[i].max().clamp_min(1e-12), pixels.shape[0]).numpy()
        axes[0, i].imshow(pixels)
        axes[1, i].imshow(pixels)
        shown = axes[1, i].imshow(up, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    axes[1, 0].set_title("rollout", fontsize=9, loc="left")
    fig.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.8, label="rollout / its maximum")
    return fig


def plot_position_similarity(position_embedding: torch.Tensor) -> Figure:
    """Paper Fig. 7 (centre): cosine similarity of each patch's position embedding [N, D] with every
    other one, one small map per patch, laid out on the patch grid. The colours span the similarities there are
    (from the lowest, rounded down to a tenth, to 1), so that the differences between them show."""
    side = int(len(position_embedding) ** 0.5)
    similarity = position_similarity(position_embedding).reshape(side * side, side, side)
    low = math.floor(10 * similarity.min().item()) / 10
    fig, axes = plt.subplots(side, side, figsize=(7.6, 7))
    for ax, patch in zip(axes.flat, similarity):
        shown = ax.imshow(patch.numpy(), cmap="viridis", vmin=low, vmax=1)
        ax.axis("off")
    fig.colorbar(shown, ax=axes, shrink=0.6, label="cosine similarity")
    fig.suptitle("position embedding similarity (row, column of the input patch)")
    return fig


def plot_embedding_filters(weight: torch.Tensor, count: int = 28) -> Figure:
    """Paper Fig. 7 (left): the top principal components of the patch projection E, weight [D, C, P, P]."""
    d, c, p, _ = weight.shape
    flat = weight.detach().float().cpu().reshape(d, -1)
    _, _, components = torch.linalg.svd(flat - flat.mean(0), full_matrices=False)
    count = min(count, len(components))
    fig, axes = _image_grid(-(-count // 7), 7, 1.3, 1.4)
    for number, (component, ax) in enumerate(zip(components[:count], axes.flat), start=1):
        filt = component.reshape(c, p, p)
        filt = (filt - filt.min()) / (filt.max() - filt.min()).clamp_min(1e-12)
        ax.imshow(filt.permute(1, 2, 0).numpy())
        ax.set_title(str(number), fontsize=8)  # the prose counts them
    fig.suptitle(f"first {count} principal components of the patch embedding filters")
    return _finish(fig)


def plot_attention_distance(distances: torch.Tensor, uniform: float | None = None) -> Figure:
    """Paper Fig. 7 (right): mean attention distance [L, heads] of every head against its layer,
    from 0, with uniform attention's distance as a dashed line when ``uniform`` is given."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    layers = torch.arange(1, len(distances) + 1)
    for h in range(distances.shape[1]):
        ax.scatter(layers, distances[:, h], s=16, label=f"head {h + 1}")
    top = float(distances.max())
    if uniform is not None:
        ax.axhline(uniform, color="grey", linestyle="--", linewidth=1, label="uniform attention")
        top = max(top, uniform)
    ax.set_ylim(0, 1.1 * top)
    ax.set(xlabel="layer", ylabel="mean attention distance (pixels)", title="attention distance per head")
    ax.legend(fontsize=7, ncols=2, loc="lower right")
    return _finish(fig, ax)


def plot_seeds(groups: dict[str, Sequence[dict]]) -> Figure:
    """Final test accuracy of every seed (dots) and the mean ± its standard error (bar: the quantity Welch's t-test
    compares) of each variant, from ``compare.train_seeds`` results by variant name."""
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 4))
    for i, runs in enumerate(groups.values()):
        accs = [100 * r["test_acc"] for r in runs]
        mean, error = mean_se(accs)
        ax.errorbar(i, mean, yerr=error, fmt="s", color=f"C{i}", capsize=8, markersize=8)
        ax.scatter([i + 0.12] * len(accs), accs, color=f"C{i}", alpha=0.6, s=18)
    ax.set_xticks(range(len(groups)), list(groups), rotation=15)
    ax.set(ylabel="test accuracy (%)", title="final test accuracy: seeds (dots), mean ± standard error")
    return _finish(fig, ax)


def plot_accuracy_vs_parameters(groups: dict[str, dict[str, Sequence[dict]]], connected: Sequence[str] = ()) -> Figure:
    """Final test accuracy against parameter count, one colour per family (family -> variant -> seed runs with
    "parameters" and "test_acc", as ``compare.train_seeds`` returns them): seeds as dots, mean ± standard error as
    bars. Only the families in ``connected`` (one design at growing size) get a line through their means."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, variants) in enumerate(groups.items()):
        points = sorted((runs[0]["parameters"] / 1e6, name, [100 * r["test_acc"] for r in runs])
                        for name, runs in variants.items())
        means, errors = zip(*(mean_se(accs) for _, _, accs in points))
        ax.errorbar([p for p, _, _ in points], means, yerr=errors, marker="s", capsize=6, color=f"C{i}",
                    label=label, linestyle="-" if label in connected else "none")
        for p, name, accs in points:
            ax.scatter([p] * len(accs), accs, color=f"C{i}", alpha=0.5, s=14)
            ax.annotate(name, (p, max(accs)), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="parameters (millions)", ylabel="test accuracy (%)",
           title="accuracy vs parameters: seeds (dots), mean ± standard error")
    ax.legend(loc="lower right")
    return _finish(fig, ax)


def plot_transfer(results: dict[int, dict[str, Sequence[float]]], num_classes: int, steps: int, batch_size: int,
                  curve: dict) -> Figure:
    """Notebook 10. Left: test accuracy against labels per class of each method after ``steps`` steps of
    ``batch_size`` (``results``: labels -> method -> accuracy per seed), beside the from-scratch model trained to
    its plateau (``curve``, from ``benchmarks/scratch_curve.py``). Right: that curve against the images seen,
    beside fine-tuning at the two largest budgets. Mean ± standard error throughout; legends below the plots."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    budgets = sorted(results)
    per_class = [n // num_classes for n in budgets]
    for i, method in enumerate(results[budgets[0]]):
        means, errors = zip(*(mean_se(100 * acc for acc in results[n][method]) for n in budgets))
        left.errorbar(per_class, means, yerr=errors, marker="o", capsize=3,
                      color=f"C{i}", label=f"{method}, {steps} steps")
    seeds = len(curve["test_acc"])
    over_seeds = [mean_se(100 * acc for acc in evaluation) for evaluation in zip(*curve["test_acc"])]
    mean, error = (torch.tensor(column, dtype=torch.float64) for column in zip(*over_seeds))
    left.errorbar([curve["train_images"] // num_classes], [mean[-1].item()], yerr=[error[-1].item()], marker="*",
                  markersize=12, capsize=3, color="C2", linestyle="none",
                  label=f"from scratch, {curve['steps'][-1]:,} steps of {curve['batch_size']}")
    left.axhline(100 / num_classes, color="grey", ls=":", label="chance")
    left.set(xscale="log", xlabel="labelled training images per class", ylabel="test accuracy (%)", ylim=(0, 100),
             title=f"batches of {batch_size} unless said; mean ± standard error over seeds")
    left.set_xticks(sorted({*per_class, curve["train_images"] // num_classes}))
    left.xaxis.set_major_formatter(ScalarFormatter())
    seen = [step * curve["batch_size"] / 1000 for step in curve["steps"]]
    right.plot(seen, mean, color="C2", label=f"from scratch, mean of {seeds} seeds")
    right.fill_between(seen, mean - error, mean + error, color="C2", alpha=0.25, label="± standard error")
    for n, style in zip(budgets[-2:], ("-.", "--")):
        level = 100 * mean_std(results[n]["fine-tuning"])[0]
        right.axhline(level, color="C1", ls=style, label=f"fine-tuned, {n // num_classes} per class, {steps} steps")
    right.axvline(steps * batch_size / 1000, color="grey", ls=":", label=f"fine-tuning's {steps} steps of {batch_size}")
    right.set(xlabel="training images seen (thousands)", ylabel="test accuracy (%)", ylim=(0, 100),
              title=f"from scratch, {curve['train_images'] // num_classes} labels per class")
    for ax in (left, right):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=2, fontsize=8)
    return _finish(fig, left, right)


def merged_patch_image(image: torch.Tensor, groups: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Paint every patch of ``image`` [3, H, W] with the mean colour of its merged group (``groups``
    [N]: each patch's final token, from ``tome.patch_groups``), as in the ToMe paper's figures."""
    c, h, w = image.shape
    grid = h // patch_size
    patches = image.reshape(c, grid, patch_size, grid, patch_size).permute(1, 3, 0, 2, 4)  # [gh, gw, C, P, P]
    colours = patches.reshape(grid * grid, c, -1).float().mean(dim=-1)  # [N, C]
    _, inverse = groups.unique(return_inverse=True)
    count = torch.bincount(inverse).float()[:, None]
    group_colours = torch.zeros(count.shape[0], c).index_add_(0, inverse, colours) / count  # patches have equal area
    painted = group_colours[inverse].reshape(grid, grid, c, 1, 1).expand(-1, -1, -1, patch_size, patch_size)
    return painted.permute(2, 0, 3, 1, 4).reshape(c, h, w)


def plot_merged_patches(images: torch.Tensor, groups_by_r: dict[int, torch.Tensor], patch_size: int, mean=None,
                        std=None, labels: Sequence[str] | None = None) -> Figure:
    """One row per image: the image (titled with its class in ``labels``), then for each r the patches painted by
    merged group (with the group count)."""
    fig, axes = _image_grid(images.shape[0], 1 + len(groups_by_r), 1.9, 1.9)
    for i, image in enumerate(images):
        axes[i, 0].imshow(to_display(image, mean, std))
        axes[i, 0].set_title(labels[i] if labels is not None else "image" if i == 0 else "", fontsize=9)
        for j, (r, groups) in enumerate(groups_by_r.items(), start=1):
            axes[i, j].imshow(to_display(merged_patch_image(image.float(), groups[i], patch_size), mean, std))
            draw_group_boundaries(axes[i, j], groups[i], patch_size)
            axes[i, j].set_title(f"r={r}: {groups[i].unique().numel()} tokens", fontsize=9)
    return _finish(fig)


def draw_group_boundaries(ax, groups: torch.Tensor, patch_size: int, color: str = "white") -> None:
    """Lines between neighbouring patches that belong to different merged groups (``groups`` [N] on a g x g grid)."""
    grid = int(len(groups) ** 0.5)
    cells = groups.reshape(grid, grid)
    for r in range(grid):
        for c in range(grid):
            if c + 1 < grid and cells[r, c] != cells[r, c + 1]:  # a vertical edge on the right
                x = (c + 1) * patch_size - 0.5
                ax.plot([x, x], [r * patch_size - 0.5, (r + 1) * patch_size - 0.5], color=color, linewidth=0.8)
            if r + 1 < grid and cells[r, c] != cells[r + 1, c]:  # a horizontal edge below
                y = (r + 1) * patch_size - 0.5
                ax.plot([c * patch_size - 0.5, (c + 1) * patch_size - 0.5], [y, y], color=color, linewidth=0.8)


def plot_tome_tradeoff(rs: Sequence[int], images_per_s: Sequence[float], accuracies: Sequence[float]) -> Figure:
    """Token merging: test accuracy against inference speed, one point per r (tokens merged per
    layer), each labelled with its change in points from the first r (no merging); the accuracy axis spans the
    accuracies measured, so that drops of a fraction of a point show."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    accs = [100 * a for a in accuracies]
    ax.plot(images_per_s, accs, marker="o")
    for r, x, y in zip(rs, images_per_s, accs):
        ax.annotate(f"r={r}: {y - accs[0]:+.1f}", (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    spread = max(max(accs) - min(accs), 1.0)
    ax.set_ylim(min(accs) - 0.3 * spread, max(accs) + 0.2 * spread)
    ax.set(xlabel="inference throughput (images / s)", ylabel="test accuracy (%)",
           title="token merging: accuracy vs speed (no retraining)")
    return _finish(fig, ax)
