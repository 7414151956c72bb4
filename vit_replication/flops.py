"""How much compute a ViT costs: multiply-accumulates (MACs) of its matrix products, equation by equation.

An image of H x H pixels is cut into N = (H / P)^2 patches (Eq. 1). With T = N' + 1 tokens of width D in the
encoder (N' = N, or the N' = max(1, int(N (1 - p))) patch tokens that patch dropout keeps while training, plus the
class token), L layers and MLP width ``mlp_dim``, one image costs

    Eq. 1  patch projection          N * (C P^2) * D        (every patch is projected, kept or not)
    Eq. 2  q, k, v and U_msa          L * 4 T D^2
           q k^T and A v              L * 2 T^2 D
    Eq. 3  MLP                        L * 2 T D mlp_dim
    Eq. 4  head                       D * num_classes

MACs; LayerNorm, softmax, GELU, biases and additions are left out (under 1 % for every config here), and so is the
bicubic resampling of E_pos for another image size (once per batch, not per image). The "GFLOPs" that torchvision's
and timm's model tables list are these MACs (ViT-B/16: 17.56 G); a FLOP counter such as
``torch.utils.flop_counter.FlopCounterMode`` counts 2 FLOPs per MAC.

A training step (forward and backward) costs 3 forward passes: the backward pass of every product computes the
gradient of both of its inputs. The one exception is the patch projection, whose input, the images, needs no
gradient, so ``FlopCounterMode`` counts exactly ``2 * forward_macs(...)["patch_embedding"]`` FLOPs per image fewer
than ``training_flops`` (tests/test_flops.py checks the count to the FLOP). A training run sums its epochs, each at its
own image size (a low-resolution first phase, paper Sec. 3.2) with patch dropout's kept tokens; evaluation passes
are not training FLOPs.
"""

from __future__ import annotations

from .embedding import kept_patches
from .model import ViTConfig


def forward_macs(config: ViTConfig, image_size: int | None = None, patch_dropout: float = 0.0) -> dict[str, int]:
    """Multiply-accumulates of one image's forward pass, per equation, and their ``total``: at ``image_size`` pixels
    (default: the config's), with the patch tokens that ``patch_dropout`` keeps (a training-mode forward pass)."""
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
    """FLOPs of one image's forward pass (``forward_macs``' arguments): 2 per multiply-accumulate, as
    ``FlopCounterMode`` counts them."""
    return 2 * forward_macs(config, image_size, patch_dropout)["total"]


def training_flops(config: ViTConfig, images: int, image_size: int | None = None, patch_dropout: float = 0.0) -> int:
    """FLOPs of training on ``images`` images at ``image_size`` pixels with ``patch_dropout``: 3 forward passes each
    (forward + backward; see the module docstring for the patch projection's input gradient, which is not
    computed)."""
    return 3 * forward_flops(config, image_size, patch_dropout) * images


def run_training_flops(config: ViTConfig, images_per_epoch: int, epochs: int, low_res_epochs: int = 0,
                       low_res_size: int | None = None, patch_dropout: float = 0.0,
                       dropout_epochs: int | None = None) -> int:
    """FLOPs of the training steps of a run of ``epochs`` epochs of ``images_per_epoch`` images: the first
    ``low_res_epochs`` at ``low_res_size`` pixels, the rest at the config's size; the first ``dropout_epochs`` (None:
    all) with ``patch_dropout`` (``recipe.epoch_schedule``'s phases). Evaluation is not counted."""
    low = min(low_res_epochs, epochs) if low_res_size else 0
    dropout_epochs = epochs if dropout_epochs is None else dropout_epochs
    return sum(training_flops(config, images_per_epoch, low_res_size if epoch < low else None,
                              patch_dropout if epoch < dropout_epochs else 0.0) for epoch in range(epochs))


def describe(config: ViTConfig) -> str:
    """One line: forward GMACs (the tables' "GFLOPs") and GFLOPs per image."""
    macs = forward_macs(config)["total"]
    return f"{macs / 1e9:.3f} GMACs = {2 * macs / 1e9:.3f} GFLOPs per image (forward)"
