"""The paper's Fig. 1, redrawn with the equation numbers and the tensor shapes of a given ViT config.

    python -m vit_replication.analysis.figures             # writes assets/vit_architecture.png (ViT-B/16 at 224)

Left: the model overview (Eq. 1 patches, projection, class token, position embeddings; the encoder; Eq. 4 head).
Right: one encoder layer (Eq. 2 LN -> MSA -> residual, Eq. 3 LN -> MLP -> residual), repeated L times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ..data.datasets import sample_photo
from ..model.vit import ViTConfig, get_config

ARCHITECTURE_PNG = Path(__file__).resolve().parents[2] / "assets" / "vit_architecture.png"
COLOURS = {"embed": "#f9d9a6", "pos": "#c9b3e6", "cls": "#f4a6a6", "norm": "#fff3b0", "attn": "#a8d5ba",
           "mlp": "#a6c8f0", "enc": "#eeeeee"}


def _box(ax, x: float, y: float, w: float, h: float, text: str, colour: str, size: float = 9) -> None:
    box = FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.12", fc=colour, ec="black", lw=1)
    ax.add_patch(box)
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", lw=1.2, color="black"))


def _shape(ax, x: float, y: float, text: str) -> None:
    ax.text(x, y, text, ha="left", va="center", fontsize=8, color="#1f4e9c", family="monospace")


def draw_architecture(config: ViTConfig | None = None) -> Figure:
    """Fig. 1 of the paper with Eqs. 1-4 and the shapes of ``config`` (default ViT-B/16, 224x224, 1000 classes)."""
    cfg = config or get_config("vit_b_16")
    grid = cfg.image_size // cfg.patch_size
    n, d, pc = grid * grid, cfg.hidden_dim, cfg.patch_size ** 2 * cfg.in_channels
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 7.2), gridspec_kw=dict(width_ratios=[1.75, 1]))
    for ax in (left, right):
        ax.set_axis_off()
    left.set(xlim=(0, 14), ylim=(0, 12))
    right.set(xlim=(0, 9), ylim=(0, 12))

    # Eq. 1: the image, cut into patches, flattened, projected, with the class token and position embeddings
    photo = sample_photo(cfg.image_size).permute(1, 2, 0).numpy()
    left.imshow(photo, extent=(0.1, 2.6, 0.2, 2.7))
    for k in range(1, grid):
        t = k / grid * 2.5
        left.plot([0.1 + t, 0.1 + t], [0.2, 2.7], color="white", lw=0.4)
        left.plot([0.1, 2.6], [0.2 + t, 0.2 + t], color="white", lw=0.4)
    _shape(left, 0.1, 3.0, f"x: [{cfg.in_channels}, {cfg.image_size}, {cfg.image_size}]")
    _arrow(left, (2.7, 1.45), (3.3, 1.45))
    shown = 9  # patches drawn: the first 7, an ellipsis, the last
    indices = list(range(shown - 2)) + [None, n - 1]
    size = cfg.patch_size
    for i, index in enumerate(indices):
        x = 3.5 + i * 1.05
        if index is None:
            left.text(x + 0.4, 1.4, "…", ha="center", va="center", fontsize=12)
            continue
        row, col = divmod(index, grid)
        patch = photo[row * size:(row + 1) * size, col * size:(col + 1) * size]
        left.imshow(patch, extent=(x, x + 0.8, 1.0, 1.8))
        left.add_patch(plt.Rectangle((x, 1.0), 0.8, 0.8, fill=False, ec="black", lw=0.8))
    _shape(left, 3.5, 0.55, f"x_p: [N, P²C] = [{n}, {pc}]   (N = HW/P², P = {cfg.patch_size})")
    _arrow(left, (8.2, 1.9), (8.2, 2.5))
    projection = r"Linear projection of flattened patches  $\mathbf{E} \in \mathbb{R}^{(P^2C)\times D}$"
    _box(left, 3.4, 2.5, 9.6, 0.7, projection, COLOURS["embed"])
    for i in range(shown + 1):
        x = 2.5 + i * 1.05
        _arrow(left, (x + 0.4, 3.25) if i else (x + 0.4, 3.4), (x + 0.4, 3.9))
        left.add_patch(plt.Rectangle((x, 3.9), 0.8, 0.55, fc=COLOURS["cls"] if i == 0 else COLOURS["embed"],
                                     ec="black", lw=0.8))
        left.add_patch(plt.Rectangle((x, 4.45), 0.8, 0.45, fc=COLOURS["pos"], ec="black", lw=0.8))
        label = "…" if i == shown - 1 else ("0" if i == 0 else str(i if i < shown else n))
        left.text(x + 0.4, 4.67, label, ha="center", va="center", fontsize=8)
        left.text(x + 0.4, 4.17, "*" if i == 0 else "", ha="center", va="center", fontsize=10)
    left.text(2.9, 3.55, r"$\mathbf{x}_\mathrm{class}$", ha="center", fontsize=9, color="#a33")
    left.text(13.1, 4.67, r"+ $\mathbf{E}_{pos}$", ha="left", va="center", fontsize=10)
    left.text(13.1, 4.1, "Eq. 1", ha="left", va="center", fontsize=10, color="#1f4e9c")
    _shape(left, 2.5, 5.25, f"z_0: [N+1, D] = [{n + 1}, {d}]")

    # the encoder and Eq. 4
    _arrow(left, (7.1, 5.55), (7.1, 6.1))
    _box(left, 2.5, 6.1, 10.2, 2.0, f"Transformer encoder\nL = {cfg.num_layers} layers of Eqs. 2-3 (right)",
         COLOURS["enc"], size=11)
    _shape(left, 3.2, 8.45, f"z_L: [N+1, D] = [{n + 1}, {d}]; Eq. 4 keeps token 0, the class token")
    _arrow(left, (2.9, 8.1), (2.9, 9.0))
    _box(left, 2.2, 9.0, 3.2, 0.6, "LayerNorm", COLOURS["norm"])
    left.text(5.7, 9.3, r"Eq. 4: $\mathbf{y} = \mathrm{LN}(\mathbf{z}^0_L)$", fontsize=10, color="#1f4e9c",
              va="center")
    _arrow(left, (3.8, 9.6), (3.8, 10.1))
    _box(left, 2.2, 10.1, 3.2, 0.6, f"MLP head: Linear(D, {cfg.num_classes})", COLOURS["mlp"])
    _shape(left, 5.7, 10.4, f"y: [D] → logits [{cfg.num_classes}]")
    _arrow(left, (3.8, 10.7), (3.8, 11.3))
    left.text(3.8, 11.55, "class: bird, ball, car, …", ha="center", fontsize=10)

    # one encoder layer: Eq. 2 and Eq. 3
    right.add_patch(FancyBboxPatch((0.6, 0.9), 6.9, 10.0, boxstyle="round,pad=0.05", fc=COLOURS["enc"], ec="black"))
    right.text(7.7, 5.9, f"× L = {cfg.num_layers}", fontsize=12)
    x0 = 1.9
    right.text(x0 + 1.4, 0.2, r"embedded patches  $\mathbf{z}_{\ell-1}$", ha="center", fontsize=9)
    stages = [("LayerNorm", COLOURS["norm"], 2.0), (f"Multi-head attention\n{cfg.num_heads} heads of "
                                                  f"D/k = {d // cfg.num_heads}", COLOURS["attn"], 3.3),
              ("LayerNorm", COLOURS["norm"], 6.2), (f"MLP: D → {cfg.mlp_dim} → D\nGELU", COLOURS["mlp"], 7.5)]
    _arrow(right, (x0 + 1.4, 0.5), (x0 + 1.4, 2.0))
    for text, colour, y in stages:
        h = 0.6 if text == "LayerNorm" else 0.95
        _box(right, x0, y, 2.8, h, text, colour, size=8.5)
    for y0, y1 in [(2.6, 3.3), (4.25, 5.15), (6.8, 7.5), (8.45, 9.55)]:
        _arrow(right, (x0 + 1.4, y0), (x0 + 1.4, y1 - (0.25 if y1 in (5.15, 9.55) else 0)))
    eq2 = "Eq. 2\n" r"$\mathbf{z}'_\ell = \mathrm{MSA}(\mathrm{LN}(\mathbf{z}_{\ell-1})) + \mathbf{z}_{\ell-1}$"
    eq3 = "Eq. 3\n" r"$\mathbf{z}_\ell = \mathrm{MLP}(\mathrm{LN}(\mathbf{z}'_\ell)) + \mathbf{z}'_\ell$"
    for y_split, y_add, eq in [(1.5, 5.15, eq2), (5.6, 9.55, eq3)]:
        right.plot([x0 + 1.4, 1.2, 1.2], [y_split, y_split, y_add], color="black", lw=1.2)
        _arrow(right, (1.2, y_add), (x0 + 1.15, y_add))
        right.add_patch(plt.Circle((x0 + 1.4, y_add), 0.25, fc="white", ec="black"))
        right.text(x0 + 1.4, y_add, "+", ha="center", va="center", fontsize=11)
        right.text(x0 + 1.75, y_add, eq, fontsize=8.5, color="#1f4e9c", va="center")
    _arrow(right, (x0 + 1.4, 9.8), (x0 + 1.4, 11.3))
    right.text(x0 + 1.4, 11.5, r"$\mathbf{z}_\ell$: [N+1, D]", ha="center", fontsize=9, color="#1f4e9c")
    fig.suptitle(f"The Vision Transformer (paper Fig. 1), shapes for {cfg.image_size}x{cfg.image_size} images, "
                 f"P = {cfg.patch_size}, D = {d}, L = {cfg.num_layers}", fontsize=12)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> Path:
    """Write the architecture figure to ``argv[0]`` (default ``assets/vit_architecture.png``)."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else ARCHITECTURE_PNG
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = draw_architecture()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
