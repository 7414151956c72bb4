"""How much compute a ViT costs: multiply-accumulates (MACs) of its matrix products, equation by equation.

An image of H x H pixels is cut into N = (H / P)^2 patches (Eq. 1). With T = N' + 1 tokens of width D in the
encoder (N' = N, or the N' = max(1, int(N (1 - p))) patch tokens that patch dropout keeps while training, plus the
class token), L layers and MLP width ``mlp_dim``, one image costs

    Eq. 1  patch projection          N * (C P^2) * D        (every patch is projected, kept or not)
    Eq. 2  q, k, v and U_msa          L * 4 T D^2
           q k^T and A v              L * 2 T^2 D
    Eq. 3  MLP                        L * 2 T D mlp_dim
    Eq. 4  head                       D * num_classes

MACs; LayerNorm, softmax, GELU, biases and additions are left out (under 1 %), and so is resampling E_pos
for another image size (once per batch). The "GFLOPs" of torchvision's and timm's model tables are these
MACs; a FLOP counter such as ``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per MAC.

A training step costs 3 forward passes: the backward pass of every product computes the gradient of both of its
inputs, except the patch projection's, whose input (the images) needs none; ``FlopCounterMode`` counts
``2 * forward_macs(...)["patch_embedding"]`` FLOPs per image fewer than ``training_flops``.
"""

from __future__ import annotations

from ..model.embedding import kept_patches
from ..model.vit import ViTConfig


def forward_macs(config: ViTConfig, image_size: int | None = None, patch_dropout: float = 0.0) -> dict[str, int]:
    """MACs of one image's forward pass per equation, and their ``total``, at ``image_size`` pixels (default: the
    config's) with the patch tokens that ``patch_dropout`` keeps (a training-mode forward pass)."""
    size = config.image_size if image_size is None else image_size
    n = (size // config.patch_size) ** 2  # every patch is embedded (Eq. 1) ...
    tokens = kept_patches(n, patch_dropout) + 1  # ... the encoder sees the kept ones and the class token
    d, layers = config.hidden_dim, config.num_layers
    macs = {
        "patch_embedding": n * config.in_channels * config.patch_size**2 * d,  # Eq. 1
        "attention_projections": layers * 4 * tokens * d * d,  # Eq. 2: U_qkv and U_msa
        "attention_scores": layers * 2 * tokens * tokens * d,  # Eq. 2: q k^T and A v, all heads
        "mlp": layers * 2 * tokens * d * config.mlp_dim,  # Eq. 3
        "head": d * config.num_classes,  # Eq. 4
    }
    macs["total"] = sum(macs.values())
    return macs


def forward_flops(config: ViTConfig, image_size: int | None = None, patch_dropout: float = 0.0) -> int:
    """FLOPs of one image's forward pass: 2 per MAC, as ``FlopCounterMode`` counts them."""
    return 2 * forward_macs(config, image_size, patch_dropout)["total"]


def training_flops(config: ViTConfig, images: int, image_size: int | None = None, patch_dropout: float = 0.0) -> int:
    """FLOPs of training on ``images`` images: 3 forward passes each (forward + backward)."""
    return 3 * forward_flops(config, image_size, patch_dropout) * images


def run_training_flops(config: ViTConfig, history: dict[str, list], batch_size: int, patch_dropout: float = 0.0,
                       low_res_size: int | None = None) -> int:
    """FLOPs of a run's training steps, each epoch at its own image size (a low-resolution first phase, Sec. 3.2),
    from the ``steps`` and ``low_res_steps`` of its ``history`` (``training.loop.fit``). Evaluation is left out."""
    low, steps = sum(history["low_res_steps"]), sum(history["steps"])
    return (training_flops(config, low * batch_size, low_res_size, patch_dropout) * bool(low)
            + training_flops(config, (steps - low) * batch_size, None, patch_dropout))


def describe(config: ViTConfig) -> str:
    """One line: forward GMACs (the tables' "GFLOPs") and GFLOPs per image."""
    macs = forward_macs(config)["total"]
    return f"{macs / 1e9:.3f} GMACs = {2 * macs / 1e9:.3f} GFLOPs per image (forward)"
