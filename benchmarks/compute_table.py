"""Training compute of this project's CIFAR-10 runs beside public plain-ViT results on CIFAR-10, counted alike: the
FLOPs of the training steps, 3 passes (forward and backward) x 2 FLOPs per multiply-add x the forward multiply-adds
of every image seen (``flops.run_training_flops``: each step at its resolution, with patch dropout's kept tokens;
evaluation not counted). This project's rows are its presets for the epochs their runs trained, counted as
``loop.fit`` records such a run: full batches (the last partial one dropped), the first ``low_res_fraction`` of the
steps at ``low_res_size``. The public rows' architectures, epochs and training-set sizes are as their sources report
them, with 4x4 patches on 32x32 images and a class token. The accuracies beside these figures are in the README,
with their sources. Pure arithmetic: it trains nothing and takes a second.

    python benchmarks/compute_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.analysis.flops import forward_macs, run_training_flops, training_flops  # noqa: E402
from vit_replication.model import get_config  # noqa: E402
from vit_replication.training.config import TrainConfig, model_config, preset  # noqa: E402

CIFAR_TRAIN = 50_000

# this project's runs: (name, preset, epochs trained)
OURS = (
    ("this project, 10 min", "short-cpu", 37),
    ("this project, 30 min", "short-cpu", 121),
    ("this project, 10 min (AVX2 only)", "short-cpu", 17),
    ("this project, 30 min (AVX2 only)", "short-cpu", 67),
    ("this project, 150 min", "long-cpu", 263),
    ("this project, 150 min (AVX2 only)", "long-cpu", 135),
)
# public plain ViTs trained from scratch on CIFAR-10: (name, hidden_dim, num_layers, num_heads, mlp_dim, epochs,
# training images)
PUBLIC = (
    ("s-chh/PyTorch-Scratch-Vision-Transformer-ViT", 128, 6, 4, 256, 200, CIFAR_TRAIN),
    ("CCT paper, ViT-Lite-7/4", 256, 7, 4, 512, 200, CIFAR_TRAIN),
    ("SPT paper, plain ViT baseline", 192, 9, 12, 384, 300, CIFAR_TRAIN),
    ("UvA deep-learning tutorial 15", 256, 6, 8, 512, 180, 45_000),
)


def fit_history(config: TrainConfig, epochs: int, images: int = CIFAR_TRAIN) -> dict[str, list[int]]:
    """The steps of ``epochs`` epochs of ``config`` on ``images`` images, as ``loop.fit`` records them: full batches,
    a step at low resolution while its progress step / steps is below ``low_res_fraction``."""
    steps = epochs * (images // config.batch_size)
    low = sum(step / steps < config.low_res_fraction for step in range(steps)) if config.low_res_size else 0
    return {"steps": [steps], "low_res_steps": [low]}


def ours(name: str, epochs: int) -> tuple[int, int]:
    """Training FLOPs of ``epochs`` epochs of preset ``name``, and its forward MACs per 32x32 image."""
    config = preset(name)
    architecture = model_config(config)
    flops = run_training_flops(architecture, fit_history(config, epochs), config.batch_size, config.patch_dropout,
                               config.low_res_size)
    return flops, forward_macs(architecture)["total"]


def public(hidden_dim: int, num_layers: int, num_heads: int, mlp_dim: int, epochs: int, images: int
           ) -> tuple[int, int]:
    """Training FLOPs and forward MACs per image of a plain ViT with 4x4 patches on 32x32 images."""
    architecture = get_config("vit_cifar", hidden_dim=hidden_dim, num_layers=num_layers, num_heads=num_heads,
                              mlp_dim=mlp_dim)
    return training_flops(architecture, images * epochs), forward_macs(architecture)["total"]


def main() -> list[dict]:
    rows = []
    for name, recipe_name, epochs in OURS:
        flops, macs = ours(recipe_name, epochs)
        rows.append({"name": name, "epochs": epochs, "pflop": flops / 1e15, "mmacs": macs / 1e6})
    for name, hidden_dim, num_layers, num_heads, mlp_dim, epochs, images in PUBLIC:
        flops, macs = public(hidden_dim, num_layers, num_heads, mlp_dim, epochs, images)
        rows.append({"name": name, "epochs": epochs, "pflop": flops / 1e15, "mmacs": macs / 1e6})
    print(f"{'run':<48}{'epochs':>7}{'M MACs/image':>14}{'PFLOP':>8}")
    for r in rows:
        print(f"{r['name']:<48}{r['epochs']:>7}{r['mmacs']:>14.1f}{r['pflop']:>8.2f}")
    return rows


if __name__ == "__main__":
    main()
