"""Eq. 4 of the paper and the whole Vision Transformer.

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos      (1)  ViTEmbedding
    z'_l = MSA(LN(z_{l-1})) + z_{l-1},  l = 1..L        (2)  EncoderBlock
    z_l = MLP(LN(z'_l)) + z'_l,         l = 1..L        (3)  EncoderBlock
    y = LN(z_L^0)                                       (4)  final LayerNorm on the class token

followed by a linear classification head on y (the paper's fine-tuning head; the pre-training MLP head with
one hidden layer is not included). Configurations follow Table 1 of the paper (Base, Large, Huge); Tiny and
Small are the DeiT sizes (Touvron et al. 2021) that timm and torchvision users know.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from .block import EncoderBlock, drop_path_rates
from .embedding import ViTEmbedding
from .errors import UserError

POOLS = ("cls", "gap")


@dataclass(frozen=True)
class ViTConfig:
    """Every hyperparameter of the architecture, with the paper's names."""

    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    hidden_dim: int = 768  # D
    num_layers: int = 12  # L
    num_heads: int = 12  # k
    mlp_dim: int = 3072
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0  # largest stochastic-depth rate, reached linearly at the last layer
    use_sdpa: bool = True
    patch_dropout: float = 0.0  # share of patch tokens dropped per image while training (embedding.PatchDropout)
    dynamic_image_size: bool = False  # accept other square sizes, interpolating E_pos (paper Sec. 3.2)
    pool: str = "cls"  # "cls": y = LN(z_L^0) (Eq. 4); "gap": y = LN(mean of the patch tokens) (paper App. D.3)

    def __post_init__(self):
        """Every field checked, so that a bad value fails here with a message that names it."""
        for name in ("image_size", "patch_size", "in_channels", "num_classes", "hidden_dim", "num_layers",
                     "num_heads", "mlp_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"ViTConfig.{name} must be a positive integer, got {value!r}")
        for name, low, high in (("dropout", 0, 1), ("attn_dropout", 0, 1), ("drop_path", 0, 1),
                                ("patch_dropout", 0, 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not low <= value < high:
                raise UserError(f"ViTConfig.{name} must be in [{low}, {high}), got {value!r}")
        if self.image_size % self.patch_size:
            raise UserError(f"ViTConfig: image_size {self.image_size} is not divisible by patch_size "
                            f"{self.patch_size}; the image cannot be cut into whole patches")
        if self.hidden_dim % self.num_heads:
            raise UserError(f"ViTConfig: hidden_dim {self.hidden_dim} is not divisible by num_heads "
                            f"{self.num_heads}; each head needs hidden_dim / num_heads dimensions")
        if self.pool not in POOLS:
            raise UserError(f"ViTConfig.pool must be one of {', '.join(POOLS)}, got {self.pool!r}")

    def __repr__(self) -> str:
        """All fields of the architecture; the training options added to it (patch dropout, dynamic image size,
        pooling) only when they differ from their defaults, so that a paper-style config reads as one."""
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in TRAINING_OPTIONS or getattr(self, f.name) != f.default]
        return f"ViTConfig({', '.join(shown)})"

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


TRAINING_OPTIONS = ("patch_dropout", "dynamic_image_size", "pool")

CONFIGS: dict[str, ViTConfig] = {
    "vit_ti_16": ViTConfig(hidden_dim=192, num_layers=12, num_heads=3, mlp_dim=768),
    "vit_s_16": ViTConfig(hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "vit_b_16": ViTConfig(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "vit_b_32": ViTConfig(patch_size=32, hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "vit_l_16": ViTConfig(hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "vit_l_32": ViTConfig(patch_size=32, hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "vit_h_14": ViTConfig(patch_size=14, hidden_dim=1280, num_layers=32, num_heads=16, mlp_dim=5120),
    # A small ViT for 32x32 images trained from scratch (notebook 05): 4x4 patches give 64 tokens + class token.
    "vit_cifar": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=256, num_layers=6, num_heads=8, mlp_dim=512,
        dropout=0.0, drop_path=0.1,
    ),
    # A narrower ViT for the CPU recipe (--preset cifar10-cpu): on a 2-core CPU, more epochs of a small model beat
    # fewer of a wide one within the same time (README, ablation).
    "vit_cifar_cpu": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=128, num_layers=6, num_heads=4, mlp_dim=512,
    ),
    # ViT-S widths with the same 4x4 patches: the candidate for the fast GPU recipe (README, notebook 05).
    "vit_s_cifar": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536,
        dropout=0.0, drop_path=0.1,
    ),
}


class ViT(nn.Module):
    """Vision Transformer: Eq. 1 embedding, L encoder blocks (Eqs. 2-3), final LN and linear head (Eq. 4)."""

    def __init__(self, config: ViTConfig | None = None, **overrides):
        super().__init__()
        config = replace(config or ViTConfig(), **overrides)
        self.config = config
        self.embedding = ViTEmbedding(
            config.image_size, config.patch_size, config.in_channels, config.hidden_dim, config.dropout,
            config.patch_dropout, config.dynamic_image_size,
        )
        rates = drop_path_rates(config.drop_path, config.num_layers)
        self.encoder = nn.ModuleList(self.make_block(config, p) for p in rates)
        self.norm = nn.LayerNorm(config.hidden_dim, eps=1e-6)
        self.head = nn.Linear(config.hidden_dim, config.num_classes)
        self.apply(init_weights)

    @staticmethod
    def make_block(config: ViTConfig, drop_path: float) -> nn.Module:
        """One encoder layer (Eqs. 2-3); variants such as RealFormer override this."""
        return EncoderBlock(config.hidden_dim, config.num_heads, config.mlp_dim, config.dropout, config.attn_dropout,
                            drop_path, config.use_sdpa)

    def set_use_sdpa(self, use_sdpa: bool) -> None:
        """Switch every attention layer between the fused SDPA kernel and the explicit Eqs. 5-8."""
        for block in self.encoder:
            block.attention.use_sdpa = use_sdpa

    def forward_features(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Images [B, C, H, W] -> y = LN(z_L^0) [B, D], plus each layer's attention [B, heads, N+1, N+1] if asked."""
        z = self.embedding(x)
        attentions = []
        for block in self.encoder:
            if return_attention:
                z, weights = block(z, return_attention=True)
                attentions.append(weights)
            else:
                z = block(z)
        return self.norm(self.pool(z)), attentions  # Eq. 4: LN on the class token only (LN is per token)

    def pool(self, z: torch.Tensor) -> torch.Tensor:
        """The image representation before LN: the class token z_L^0 (Eq. 4), or the mean of the patch tokens."""
        return z[:, 1:].mean(dim=1) if self.config.pool == "gap" else z[:, 0]

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images [B, C, H, W] -> logits [B, num_classes] (and the list of L attention maps if asked)."""
        y, attentions = self.forward_features(x, return_attention)
        logits = self.head(y)
        return (logits, attentions) if return_attention else logits


def init_weights(module: nn.Module) -> None:
    """timm/torchvision-style initialisation: truncated normal for dense layers, LeCun normal for the patch conv."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        nn.init.trunc_normal_(module.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(module.bias)


def create_vit(name: str, **overrides) -> ViT:
    """Build a model by name, e.g. ``create_vit("vit_b_16", num_classes=10)`` (like ``timm.create_model``)."""
    return ViT(get_config(name, **overrides))


def get_config(name: str, **overrides) -> ViTConfig:
    """The named configuration with ``overrides`` applied; a clear error lists the known names."""
    if name not in CONFIGS:
        raise ValueError(f"unknown ViT config {name!r}; choose one of {', '.join(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (``trainable_only``: those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def expected_num_parameters(config: ViTConfig) -> int:
    """Parameter count from the formula, without building the model (notebook 04 checks it against the model).

    Eq. 1: conv P^2 C D + D, class token D, position embedding (N + 1) D.
    Per layer: 2 LayerNorms 4D, qkv 3D^2 + 3D, U_msa D^2 + D, MLP 2 D mlp_dim + mlp_dim + D.
    Eq. 4: final LayerNorm 2D, head D * classes + classes.
    """
    d, p, c = config.hidden_dim, config.patch_size, config.in_channels
    embedding = p * p * c * d + d + d + (config.num_patches + 1) * d
    layer = 4 * d + 3 * d * d + 3 * d + d * d + d + 2 * d * config.mlp_dim + config.mlp_dim + d
    head = 2 * d + d * config.num_classes + config.num_classes
    return embedding + config.num_layers * layer + head


def config_dict(config: ViTConfig) -> dict:
    """A plain dict of the config, for checkpoints and JSON."""
    return asdict(config)
