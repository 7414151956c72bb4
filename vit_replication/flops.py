"""How much compute a ViT costs: multiply-accumulates (MACs) of its matrix products, equation by equation.

With T = N + 1 tokens of width D, L layers and MLP width ``mlp_dim``, one image costs

    Eq. 1  patch projection          N * (C P^2) * D
    Eq. 2  q, k, v and U_msa          L * 4 T D^2
           q k^T and A v              L * 2 T^2 D
    Eq. 3  MLP                        L * 2 T D mlp_dim
    Eq. 4  head                       D * num_classes

MACs; LayerNorm, softmax, GELU, biases and additions are left out (under 1 % for every config here). The
"GFLOPs" that torchvision's and timm's model tables list are these MACs (ViT-B/16: 17.56 G); a FLOP counter
such as ``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per MAC. A training step (forward and
backward) costs about 3 forward passes.
"""

from __future__ import annotations

from .model import ViTConfig


def forward_macs(config: ViTConfig) -> dict[str, int]:
    """Multiply-accumulates of one image's forward pass, per equation, and their ``total``."""
    n, d, layers = config.num_patches, config.hidden_dim, config.num_layers
    tokens = n + 1
    macs = {
        "patch_embedding": n * config.in_channels * config.patch_size**2 * d,  # Eq. 1
        "attention_projections": layers * 4 * tokens * d * d,  # Eq. 2: U_qkv and U_msa
        "attention_scores": layers * 2 * tokens * tokens * d,  # Eq. 2: q k^T and A v, all heads
        "mlp": layers * 2 * tokens * d * config.mlp_dim,  # Eq. 3
        "head": d * config.num_classes,  # Eq. 4
    }
    macs["total"] = sum(macs.values())
    return macs


def forward_flops(config: ViTConfig) -> int:
    """FLOPs of one image's forward pass: 2 per multiply-accumulate, as ``FlopCounterMode`` counts them."""
    return 2 * forward_macs(config)["total"]


def training_flops(config: ViTConfig, images: int) -> int:
    """FLOPs of training on ``images`` images (forward + backward, about 3 forward passes each)."""
    return 3 * forward_flops(config) * images


def describe(config: ViTConfig) -> str:
    """One line: forward GMACs (the tables' "GFLOPs") and GFLOPs per image."""
    macs = forward_macs(config)["total"]
    return f"{macs / 1e9:.3f} GMACs = {2 * macs / 1e9:.3f} GFLOPs per image (forward)"
