"""Eq. 4 of the paper and the whole Vision Transformer.

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos      (1)  ViTEmbedding
    z'_l = MSA(LN(z_{l-1})) + z_{l-1},  l = 1..L        (2)  EncoderBlock
    z_l = MLP(LN(z'_l)) + z'_l,         l = 1..L        (3)  EncoderBlock
    y = LN(z_L^0)                                       (4)  final LayerNorm on the class token

followed by a linear head on y (the paper's fine-tuning head). Sizes follow Table 1 (Base, Large,
Huge), plus DeiT's Tiny and Small. ``ViTConfig`` fixes the weights; ``Runtime``, how a model runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from ..errors import UserError
from .block import EncoderBlock, drop_path_rates
from .embedding import ViTEmbedding
from .pooling import check_pool, pool_tokens

ATTENTIONS = ("sdpa", "explicit")


@dataclass(frozen=True)
class ViTConfig:
    """The architecture: every field that fixes a weight's shape, Eq. 4's pooling, dropout rates."""

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
    pool: str = "cls"  # "cls": y = LN(z_L^0) (Eq. 4); "gap": LN(mean of patch tokens) (App. D.3)

    def __post_init__(self):
        for name in ("image_size", "patch_size", "in_channels", "num_classes", "hidden_dim",
                     "num_layers", "num_heads", "mlp_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"ViTConfig.{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "attn_dropout"):
            check_fraction(self, name)
        if self.image_size % self.patch_size:
            raise UserError(f"ViTConfig: image_size {self.image_size} is not divisible by patch_size "
                            f"{self.patch_size}; the image cannot be cut into whole patches")
        if self.hidden_dim % self.num_heads:
            raise UserError(f"ViTConfig: hidden_dim {self.hidden_dim} is not divisible by num_heads "
                            f"{self.num_heads}; each head needs hidden_dim / num_heads dimensions")
        check_pool(self.pool, f"{type(self).__name__}.pool")

    def __repr__(self) -> str:
        """``pool`` only when it is not "cls", so that a paper config reads as Table 1."""
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "pool" or self.pool != "cls"]
        return f"ViTConfig({', '.join(shown)})"

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class Runtime:
    """How a built model runs (``ViTBase.configure``). No weight depends on these settings, so a
    checkpoint loads under any of them."""

    attention: str = "sdpa"  # "sdpa": PyTorch's fused kernel; "explicit": Eqs. 5-8 written out
    patch_dropout: float = 0.0  # share of patch tokens dropped per image while training
    drop_path: float = 0.0  # stochastic depth of the last layer, rising linearly from 0
    dynamic_image_size: bool = False  # accept other square sizes, interpolating E_pos (Sec. 3.2)

    def __post_init__(self):
        if self.attention not in ATTENTIONS:
            raise UserError(f"Runtime.attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        for name in ("patch_dropout", "drop_path"):
            check_fraction(self, name)
        if not isinstance(self.dynamic_image_size, bool):
            raise UserError(f"Runtime.dynamic_image_size must be True or False, got {self.dynamic_image_size!r}")


def check_fraction(settings, name: str) -> None:
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{type(settings).__name__}.{name} must be in [0, 1), got {value!r}")


RUNTIME_FIELDS = tuple(f.name for f in fields(Runtime))
_CIFAR = dict(image_size=32, patch_size=4, num_classes=10)  # 4x4 patches: 64 tokens + class token

CONFIGS: dict[str, ViTConfig] = {
    "vit_ti_16": ViTConfig(hidden_dim=192, num_layers=12, num_heads=3, mlp_dim=768),
    "vit_s_16": ViTConfig(hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "vit_b_16": ViTConfig(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "vit_b_32": ViTConfig(patch_size=32, hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "vit_l_16": ViTConfig(hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "vit_l_32": ViTConfig(patch_size=32, hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "vit_h_14": ViTConfig(patch_size=14, hidden_dim=1280, num_layers=32, num_heads=16, mlp_dim=5120),
    # Small ViTs for CIFAR-10 from scratch (notebooks 05 and 06): the narrower, the more epochs fit a budget.
    "vit_cifar": ViTConfig(**_CIFAR, hidden_dim=256, num_layers=6, num_heads=8, mlp_dim=512),
    "vit_cifar_cpu": ViTConfig(**_CIFAR, hidden_dim=128, num_layers=6, num_heads=4, mlp_dim=512),
    "vit_cifar_tiny": ViTConfig(**_CIFAR, hidden_dim=64, num_layers=4, num_heads=2, mlp_dim=256),
    "vit_cifar_d96": ViTConfig(**_CIFAR, hidden_dim=96, num_layers=6, num_heads=3, mlp_dim=384),
    "vit_s_cifar": ViTConfig(**_CIFAR, hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
}


def encode(blocks, z: torch.Tensor, attentions: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Eqs. 2-3 through ``blocks``, appending each layer's A [B, heads, N, N] to ``attentions``."""
    for block in blocks:
        if attentions is None:
            z = block(z)
        else:
            z, weights = block(z, return_attention=True)
            attentions.append(weights)
    return z


class ViTBase(nn.Module):
    """What every ViT of the package shares around its encoder layers: Eq. 1 (``embedding``), Eq. 4
    and the head (``pool``, ``norm``, ``head``), and ``configure``. A variant changes only the token
    loop (``blocks``, ``forward_tokens``). As in timm, ``forward_features`` gives z_L and
    ``forward_head`` the logits."""

    default_runtime = Runtime()

    def blocks(self) -> list[nn.Module]:
        """The encoder layers, first to last."""
        return list(self.encoder)

    def configure(self, runtime: Runtime | None = None, **changes) -> ViTBase:
        """Apply ``runtime`` (else the current settings) with ``changes``, e.g.
        ``model.configure(patch_dropout=0.0)``; returns the model."""
        runtime = replace(runtime or self.runtime, **changes)
        blocks = self.blocks()
        for block, rate in zip(blocks, drop_path_rates(runtime.drop_path, len(blocks))):
            block.drop_path.p = rate
            block.attention.use_sdpa = runtime.attention == "sdpa"
        self.embedding.patch_dropout.p = runtime.patch_dropout
        self.embedding.patch_embedding.dynamic_image_size = runtime.dynamic_image_size
        self.runtime = runtime
        return self

    def forward_tokens(self, z: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, list]:
        """z_0 -> (z_L, each layer's attention A_l if asked)."""
        attentions = []
        z = encode(self.blocks(), z, attentions if return_attention else None)
        return z, attentions

    def forward_features(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images -> z_L [B, N+1, D]; the final LN comes after pooling, in ``forward_head``."""
        z, attentions = self.forward_tokens(self.embedding(x), return_attention)
        return (z, attentions) if return_attention else z

    def pool(self, z: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
        return pool_tokens(z, self.config.pool, size)

    def forward_head(self, z: torch.Tensor, pre_logits: bool = False, size: torch.Tensor | None = None) -> torch.Tensor:
        """z_L -> y = LN(pool(z_L)) (Eq. 4) -> logits; y itself with ``pre_logits``. For "gap" this
        is the LN of the mean (timm's ``fc_norm``), not the mean of the LNs."""
        y = self.norm(self.pool(z, size))
        return y if pre_logits else self.head(y)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images [B, C, H, W] -> logits [B, num_classes] (and the L attention maps if asked)."""
        z, attentions = self.forward_tokens(self.embedding(x), return_attention)
        logits = self.forward_head(z)
        return (logits, attentions) if return_attention else logits


class ViT(ViTBase):
    """Vision Transformer. Keyword arguments override fields of the config or the runtime, e.g.
    ``ViT(config, num_classes=10, drop_path=0.1)``."""

    def __init__(self, config: ViTConfig | None = None, runtime: Runtime | None = None, **overrides):
        super().__init__()
        architecture, settings = split_overrides(overrides)
        self.config = config = replace(config or ViTConfig(), **architecture)
        self.embedding = ViTEmbedding(config.image_size, config.patch_size, config.in_channels,
                                      config.hidden_dim, config.dropout)
        self.encoder = nn.ModuleList(self.make_block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_dim, eps=1e-6)
        self.head = nn.Linear(config.hidden_dim, config.num_classes)
        self.apply(init_weights)
        self.configure(runtime or self.default_runtime, **settings)

    @staticmethod
    def make_block(config: ViTConfig) -> nn.Module:
        """One encoder layer (Eqs. 2-3); RealFormer overrides this."""
        return EncoderBlock(config.hidden_dim, config.num_heads, config.mlp_dim, config.dropout, config.attn_dropout)


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    """Keyword arguments -> (those for ``ViTConfig``, those for ``Runtime``)."""
    settings = {name: value for name, value in overrides.items() if name in RUNTIME_FIELDS}
    return {name: value for name, value in overrides.items() if name not in settings}, settings


def init_weights(module: nn.Module) -> None:
    """As timm and torchvision: truncated normal for dense layers, LeCun normal for the conv."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        nn.init.trunc_normal_(module.weight, std=math.sqrt(1.0 / fan_in))
        nn.init.zeros_(module.bias)


def create_vit(name: str, **overrides) -> ViT:
    """``create_vit("vit_b_16", num_classes=10)``, like ``timm.create_model``."""
    architecture, settings = split_overrides(overrides)
    return ViT(get_config(name, **architecture), **settings)


def get_config(name: str, **overrides) -> ViTConfig:
    if name not in CONFIGS:
        raise ValueError(f"unknown ViT config {name!r}; choose one of {', '.join(CONFIGS)}")
    return replace(CONFIGS[name], **overrides)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def expected_num_parameters(config: ViTConfig) -> int:
    """The parameter count by formula, without building the model.

    Eq. 1: conv P^2 C D + D, class token D, position embedding (N + 1) D.
    Per layer: 2 LayerNorms 4D, qkv 3D^2 + 3D, U_msa D^2 + D, MLP 2 D mlp_dim + mlp_dim + D.
    Eq. 4: final LayerNorm 2D, head D * classes + classes.
    """
    d, p, c = config.hidden_dim, config.patch_size, config.in_channels
    embedding = p * p * c * d + d + d + (config.num_patches + 1) * d
    layer = 4 * d + 3 * d * d + 3 * d + d * d + d + 2 * d * config.mlp_dim + config.mlp_dim + d
    head = 2 * d + d * config.num_classes + config.num_classes
    return embedding + config.num_layers * layer + head


def config_dict(config: ViTConfig | Runtime) -> dict:
    """A plain dict, for checkpoints and JSON."""
    return asdict(config)


def config_from_dict(stored: dict) -> ViTConfig:
    return ViTConfig(**stored)
