"""Figures for the notebooks and the training script; every function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torchvision.transforms.v2.functional import pil_to_tensor

from .attention_maps import upsample_maps
from .compare import mean_std


def to_display(image, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
    """A PIL image or [3, H, W] tensor (uint8, or float normalised with ``mean``/``std``) as an [H, W, 3] array
    in [0, 1]."""
    image = image.detach().cpu() if torch.is_tensor(image) else pil_to_tensor(image.convert("RGB"))
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    if mean is not None and std is not None:
        image = image * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


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


def plot_history(history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, train and test (epochs without an evaluation have None as test values)."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for split in ("train", "test"):
        points = [(e, loss, acc) for e, loss, acc in zip(history["epoch"], history[f"{split}_loss"],
                                                         history[f"{split}_acc"]) if acc is not None]
        epochs, losses, accs = zip(*points) if points else ((), (), ())
        loss_ax.plot(epochs, losses, marker="o", label=split)
        acc_ax.plot(epochs, [100 * a for a in accs], marker="o", label=split)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_predictions(
    images: torch.Tensor, targets: torch.Tensor, probs: torch.Tensor, class_names: Sequence[str],
    mean=None, std=None, ncols: int = 6,
) -> Figure:
    """A grid of images titled 'true / predicted (probability)', green when right and red when wrong."""
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.4 * nrows), squeeze=False)
    confidence, predicted = probs.max(dim=-1)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(to_display(images[i], mean, std))
        right = predicted[i] == targets[i]
        ax.set_title(f"{class_names[targets[i]]}\n→ {class_names[predicted[i]]} ({confidence[i]:.0%})",
                     fontsize=9, color="green" if right else "red")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """Confusion matrix with counts in each cell; rows are true classes, columns predictions."""
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
    fig.tight_layout()
    return fig


def plot_attention_heads(image: torch.Tensor, head_maps: torch.Tensor, mean=None, std=None) -> Figure:
    """The image, then each head's class-token attention map [heads, g, g] overlaid on it."""
    pixels = to_display(image, mean, std)
    maps = upsample_maps(head_maps, pixels.shape[0]).numpy()
    ncols = len(maps) + 1
    fig, axes = plt.subplots(1, ncols, figsize=(1.9 * ncols, 2.2))
    axes[0].imshow(pixels)
    axes[0].set_title("image", fontsize=9)
    for h, ax in enumerate(axes[1:]):
        ax.imshow(pixels)
        ax.imshow(maps[h], cmap="inferno", alpha=0.6)
        ax.set_title(f"head {h}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_rollout(images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str] | None = None,
                 mean=None, std=None) -> Figure:
    """Pairs of (image, image with its attention-rollout map [g, g] overlaid)."""
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.0 * n, 4.2), squeeze=False)
    for i in range(n):
        pixels = to_display(images[i], mean, std)
        up = upsample_maps(maps[i], pixels.shape[0]).numpy()
        axes[0, i].imshow(pixels)
        axes[1, i].imshow(pixels * up[..., None])
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    axes[1, 0].set_title("rollout", fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def plot_position_similarity(position_embedding: torch.Tensor) -> Figure:
    """Paper Fig. 7 (centre): cosine similarity of each patch's position embedding [N, D] with every other one,
    one small map per patch, laid out on the patch grid."""
    side = int(len(position_embedding) ** 0.5)
    emb = torch.nn.functional.normalize(position_embedding.detach().float().cpu(), dim=-1)
    similarity = (emb @ emb.T).reshape(side, side, side, side)
    fig, axes = plt.subplots(side, side, figsize=(7.6, 7))
    for r in range(side):
        for c in range(side):
            shown = axes[r, c].imshow(similarity[r, c].numpy(), cmap="viridis", vmin=-1, vmax=1)
            axes[r, c].axis("off")
    fig.colorbar(shown, ax=axes, shrink=0.6, label="cosine similarity")
    fig.suptitle("position embedding similarity (row, column of the input patch)")
    return fig


def plot_embedding_filters(weight: torch.Tensor, count: int = 28) -> Figure:
    """Paper Fig. 7 (left): the top principal components of the patch projection E, weight [D, C, P, P]."""
    d, c, p, _ = weight.shape
    flat = weight.detach().float().cpu().reshape(d, -1)
    _, _, components = torch.linalg.svd(flat - flat.mean(0), full_matrices=False)
    count = min(count, len(components))
    ncols = 7
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.4 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            filt = components[i].reshape(c, p, p)
            filt = (filt - filt.min()) / (filt.max() - filt.min()).clamp_min(1e-12)
            ax.imshow(filt.permute(1, 2, 0).numpy())
    fig.suptitle(f"first {count} principal components of the patch embedding filters")
    fig.tight_layout()
    return fig


def plot_attention_distance(distances: torch.Tensor, uniform: float | None = None) -> Figure:
    """Paper Fig. 7 (right): mean attention distance [L, heads] of every head against its layer, the axis from 0,
    with the distance of uniform attention as a dashed reference line when ``uniform`` is given."""
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
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_seeds(groups: dict[str, Sequence[dict]]) -> Figure:
    """Final test accuracy of every seed (dots) and the mean ± standard deviation (bar) of each variant, from
    ``compare.train_seeds`` results by variant name."""
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 4))
    for i, runs in enumerate(groups.values()):
        accs = [100 * r["test_acc"] for r in runs]
        mean, std = mean_std(accs)
        ax.errorbar(i, mean, yerr=std, fmt="s", color=f"C{i}", capsize=8, markersize=8)
        ax.scatter([i + 0.12] * len(accs), accs, color=f"C{i}", alpha=0.6, s=18)
    ax.set_xticks(range(len(groups)), list(groups), rotation=15)
    ax.set(ylabel="test accuracy (%)", title="final test accuracy: seeds (dots), mean ± std")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_accuracy_vs_parameters(groups: dict[str, Sequence[dict]]) -> Figure:
    """Final test accuracy against parameter count, one line per family of variants (e.g. tower vs width-varying)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, results in groups.items():
        results = sorted(results, key=lambda r: r["parameters"])
        params = [r["parameters"] / 1e6 for r in results]
        accs = [100 * r["test_acc"] for r in results]
        ax.plot(params, accs, marker="o", label=label)
        for r, x, y in zip(results, params, accs):
            ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xlabel="parameters (millions)", ylabel="test accuracy (%)", title="accuracy vs parameters")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def merged_patch_image(image: torch.Tensor, groups: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Paint every patch of ``image`` [3, H, W] with the mean colour of the patches merged with it
    (``groups`` [N]: the final token of each patch, from ``tome.patch_groups``), as in the ToMe paper's figures."""
    c, h, w = image.shape
    grid = h // patch_size
    patches = image.reshape(c, grid, patch_size, grid, patch_size).permute(1, 3, 0, 2, 4)  # [gh, gw, C, P, P]
    colours = patches.reshape(grid * grid, c, -1).float().mean(dim=-1)  # mean colour of each patch [N, C]
    _, inverse = groups.unique(return_inverse=True)
    count = torch.bincount(inverse).float()[:, None]
    group_colours = torch.zeros(count.shape[0], c).index_add_(0, inverse, colours) / count  # patches have equal area
    painted = group_colours[inverse].reshape(grid, grid, c, 1, 1).expand(-1, -1, -1, patch_size, patch_size)
    return painted.permute(2, 0, 3, 1, 4).reshape(c, h, w)


def plot_merged_patches(images: torch.Tensor, groups_by_r: dict[int, torch.Tensor], patch_size: int, mean=None,
                        std=None) -> Figure:
    """One row per image: the image, then for each r the patches painted by merged group (with the group count)."""
    rows, cols = images.shape[0], 1 + len(groups_by_r)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.9 * rows), squeeze=False)
    for i, image in enumerate(images):
        axes[i, 0].imshow(to_display(image, mean, std))
        axes[i, 0].set_title("image" if i == 0 else "", fontsize=9)
        for j, (r, groups) in enumerate(groups_by_r.items(), start=1):
            axes[i, j].imshow(to_display(merged_patch_image(image.float(), groups[i], patch_size), mean, std))
            axes[i, j].set_title(f"r={r}: {groups[i].unique().numel()} tokens", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_tome_tradeoff(rs: Sequence[int], images_per_s: Sequence[float], accuracies: Sequence[float]) -> Figure:
    """Token merging: inference speed and accuracy against r (tokens merged per layer)."""
    fig, (speed_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    speed_ax.plot(rs, images_per_s, marker="o")
    speed_ax.set(xlabel="r (tokens merged per layer)", ylabel="images / s", title="inference throughput")
    acc_ax.plot(rs, [100 * a for a in accuracies], marker="o", color="C1")
    acc_ax.set(xlabel="r (tokens merged per layer)", ylabel="test accuracy (%)", title="accuracy (no retraining)")
    for ax in (speed_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
