"""Eq. 4 of the paper and the whole Vision Transformer.

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos      (1)  ViTEmbedding
    z'_l = MSA(LN(z_{l-1})) + z_{l-1},  l = 1..L        (2)  EncoderBlock
    z_l = MLP(LN(z'_l)) + z'_l,         l = 1..L        (3)  EncoderBlock
    y = LN(z_L^0)                                       (4)  final LayerNorm on the class token

followed by a linear classification head on y (the paper's fine-tuning head; the pre-training MLP head with
one hidden layer is not included). Configurations follow Table 1 of the paper (Base, Large, Huge); Tiny and
Small are the DeiT sizes (Touvron et al. 2021) that timm and torchvision users know.

``ViTConfig`` is the architecture (what fixes the weights, plus pooling and the paper's dropout rates); ``Runtime``
holds how a built model runs (fused or explicit attention, patch dropout, drop path, other image sizes), applied with
``model.configure(...)``. One token path serves every variant, as in timm: ``forward_features`` gives the last
layer's tokens, ``forward_head`` pools them, applies the final LN and the head; RealFormer, the width-varying ViT and
ToMe change only the layers in between.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
from torch import nn

from .block import EncoderBlock, drop_path_rates
from .embedding import ViTEmbedding
from .errors import UserError
from .pooling import check_pool, pool_tokens

ATTENTIONS = ("sdpa", "explicit")


@dataclass(frozen=True)
class ViTConfig:
    """The architecture, with the paper's names: every field that fixes a weight's shape, the pooling of Eq. 4, and
    the paper's dropout rates. How a built model runs (``Runtime``) is not part of it."""

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
    pool: str = "cls"  # "cls": y = LN(z_L^0) (Eq. 4); "gap": y = LN(mean of the patch tokens) (paper App. D.3)

    def __post_init__(self):
        """Every field checked, so that a bad value fails here with a message that names it."""
        for name in ("image_size", "patch_size", "in_channels", "num_classes", "hidden_dim", "num_layers",
                     "num_heads", "mlp_dim"):
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
        """Every field; ``pool`` only when it is not the paper's "cls", so that a paper config reads as Table 1."""
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "pool" or self.pool != "cls"]
        return f"ViTConfig({', '.join(shown)})"

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class Runtime:
    """How a built model runs: settings applied to it by ``ViT.configure``, not part of its architecture (no weight
    depends on them, so a checkpoint loads under any of them, and ``--resume`` may change them)."""

    attention: str = "sdpa"  # "sdpa": PyTorch's fused kernel; "explicit": Eqs. 5-8 written out (the same function)
    patch_dropout: float = 0.0  # share of patch tokens dropped per image while training (embedding.PatchDropout)
    drop_path: float = 0.0  # largest stochastic-depth rate, reached linearly at the last layer (block.DropPath)
    dynamic_image_size: bool = False  # accept other square sizes, interpolating E_pos (paper Sec. 3.2)

    def __post_init__(self):
        """Every setting checked, with a message that names it."""
        if self.attention not in ATTENTIONS:
            raise UserError(f"Runtime.attention must be one of {', '.join(ATTENTIONS)}, got {self.attention!r}")
        for name in ("patch_dropout", "drop_path"):
            check_fraction(self, name)
        if not isinstance(self.dynamic_image_size, bool):
            raise UserError(f"Runtime.dynamic_image_size must be True or False, got {self.dynamic_image_size!r}")


def check_fraction(settings, name: str) -> None:
    """A ``UserError`` naming ``name`` unless that field of ``settings`` is a probability in [0, 1)."""
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"{type(settings).__name__}.{name} must be in [0, 1), got {value!r}")


RUNTIME_FIELDS = tuple(f.name for f in fields(Runtime))
LEGACY_RUNTIME_KEYS = ("use_sdpa", "patch_dropout", "dynamic_image_size", "drop_path")  # old ViTConfig fields

CONFIGS: dict[str, ViTConfig] = {
    "vit_ti_16": ViTConfig(hidden_dim=192, num_layers=12, num_heads=3, mlp_dim=768),
    "vit_s_16": ViTConfig(hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536),
    "vit_b_16": ViTConfig(hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "vit_b_32": ViTConfig(patch_size=32, hidden_dim=768, num_layers=12, num_heads=12, mlp_dim=3072),
    "vit_l_16": ViTConfig(hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "vit_l_32": ViTConfig(patch_size=32, hidden_dim=1024, num_layers=24, num_heads=16, mlp_dim=4096),
    "vit_h_14": ViTConfig(patch_size=14, hidden_dim=1280, num_layers=32, num_heads=16, mlp_dim=5120),
    # A small ViT for 32x32 images trained from scratch (notebook 05): 4x4 patches give 64 tokens + class token.
    # Its recipe (train.py) adds drop path 0.1.
    "vit_cifar": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=256, num_layers=6, num_heads=8, mlp_dim=512,
    ),
    # A narrower ViT for the CPU recipe (--preset cifar10-cpu): on a 2-core CPU, more epochs of a small model beat
    # fewer of a wide one within the same time (README, ablation).
    "vit_cifar_cpu": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=128, num_layers=6, num_heads=4, mlp_dim=512,
    ),
    # A smaller one still, for runs of a few minutes (--preset quick-cpu, the README's main job): 0.2 M parameters.
    "vit_cifar_tiny": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=64, num_layers=4, num_heads=2, mlp_dim=256,
    ),
    # Between the two, for runs of two hours or more on a CPU (--preset long-cpu): 0.68 M parameters, 48 M
    # multiply-adds per image (README, "150 minutes on the same CPU").
    "vit_cifar_d96": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=96, num_layers=6, num_heads=3, mlp_dim=384,
    ),
    # ViT-S widths with the same 4x4 patches: the candidate for the fast GPU recipe (README, notebook 05); its recipe
    # adds drop path 0.1.
    "vit_s_cifar": ViTConfig(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=384, num_layers=12, num_heads=6, mlp_dim=1536,
    ),
}


def encode(blocks, z: torch.Tensor, attentions: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Eqs. 2-3 through ``blocks`` in order; with a list ``attentions``, each layer's A [B, heads, N, N] is
    appended to it."""
    for block in blocks:
        if attentions is None:
            z = block(z)
        else:
            z, weights = block(z, return_attention=True)
            attentions.append(weights)
    return z


class ViTBase(nn.Module):
    """What every ViT of the package shares around its encoder layers: Eq. 1 in (``embedding``), Eq. 4 and the
    linear head out (``pool``, ``norm``, ``head``), and the runtime settings (``configure``).

    A subclass builds ``embedding``, its layers, ``norm`` and ``head``, sets ``config`` (with a ``pool`` field), and
    overrides ``blocks`` or ``forward_tokens`` when its layers are not one plain list (``WidthVaryingViT``) or pass
    more than the tokens along (``RealFormerViT``). The token path, as in timm:
    ``forward_features`` (tokens z_L) -> ``forward_head`` (pool, LN, head).
    """

    default_runtime = Runtime()

    def blocks(self) -> list[nn.Module]:
        """The encoder layers, first to last."""
        return list(self.encoder)

    def configure(self, runtime: Runtime | None = None, **changes) -> ViTBase:
        """Apply runtime settings to this built model (``runtime``, else the current ones, with ``changes``), e.g.
        ``model.configure(patch_dropout=0.0)``; weights and config stay as they are. Returns the model."""
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
        """z_0 [B, N+1, D] -> (z_L [B, N+1, D], each layer's attention A_l [B, heads, N+1, N+1] if asked)."""
        attentions = []
        z = encode(self.blocks(), z, attentions if return_attention else None)
        return z, attentions

    def forward_features(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images [B, C, H, W] -> all tokens of the last layer, z_L [B, N+1, D] (Eqs. 1-3; the final LN comes
        after pooling, in ``forward_head``), and the list of L attention maps if asked."""
        z, attentions = self.forward_tokens(self.embedding(x), return_attention)
        return (z, attentions) if return_attention else z

    def pool(self, z: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens [B, N+1, D] -> the image representation before LN [B, D]: the class token z_L^0 (Eq. 4), or the
        mean of the patch tokens ("gap", App. D.3), each weighted by the patches it stands for when ``size``
        [B, N+1, 1] is given (merged tokens, ToMe)."""
        return pool_tokens(z, self.config.pool, size)

    def forward_head(self, z: torch.Tensor, pre_logits: bool = False, size: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens z_L -> y = LN(pool(z_L)) [B, D] (Eq. 4) -> logits y W_head + b [B, num_classes]; y itself with
        ``pre_logits``. LN is per token, so for "cls" this is LN(z_L)^0; for "gap" it is the LN of the mean (as
        timm's ``fc_norm``), not the mean of the LNs."""
        y = self.norm(self.pool(z, size))
        return y if pre_logits else self.head(y)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images [B, C, H, W] -> logits [B, num_classes] (and the list of L attention maps if asked)."""
        z, attentions = self.forward_tokens(self.embedding(x), return_attention)
        logits = self.forward_head(z)
        return (logits, attentions) if return_attention else logits


class ViT(ViTBase):
    """Vision Transformer: Eq. 1 embedding, L encoder blocks (Eqs. 2-3), final LN and linear head (Eq. 4).

    ``ViT(config, runtime)``; keyword arguments override fields of either, e.g.
    ``ViT(config, num_classes=10, drop_path=0.1)``.
    """

    def __init__(self, config: ViTConfig | None = None, runtime: Runtime | None = None, **overrides):
        super().__init__()
        architecture, settings = split_overrides(overrides)
        self.config = config = replace(config or ViTConfig(), **architecture)
        self.embedding = ViTEmbedding(config.image_size, config.patch_size, config.in_channels, config.hidden_dim,
                                      config.dropout)
        self.encoder = nn.ModuleList(self.make_block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.hidden_dim, eps=1e-6)
        self.head = nn.Linear(config.hidden_dim, config.num_classes)
        self.apply(init_weights)
        self.configure(runtime or self.default_runtime, **settings)

    @staticmethod
    def make_block(config: ViTConfig) -> nn.Module:
        """One encoder layer (Eqs. 2-3); variants such as RealFormer override this."""
        return EncoderBlock(config.hidden_dim, config.num_heads, config.mlp_dim, config.dropout, config.attn_dropout)


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    """Keyword arguments -> (those for ``ViTConfig``, those for ``Runtime``)."""
    settings = {name: value for name, value in overrides.items() if name in RUNTIME_FIELDS}
    return {name: value for name, value in overrides.items() if name not in settings}, settings


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
    """Build a model by name, e.g. ``create_vit("vit_b_16", num_classes=10)`` (like ``timm.create_model``);
    ``overrides`` may be fields of ``ViTConfig`` or of ``Runtime``."""
    architecture, settings = split_overrides(overrides)
    return ViT(get_config(name, **architecture), **settings)


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


def config_dict(config: ViTConfig | Runtime) -> dict:
    """A plain dict of the config (or of the runtime settings), for checkpoints and JSON."""
    return asdict(config)


def architecture_dict(stored: dict) -> dict:
    """A stored config dict without the runtime settings that older checkpoints stored in their config
    (``LEGACY_RUNTIME_KEYS``): the architecture alone."""
    return {name: value for name, value in stored.items() if name not in LEGACY_RUNTIME_KEYS}


def config_from_dict(stored: dict) -> ViTConfig:
    """The ``ViTConfig`` of a dict written by ``config_dict``, old checkpoints' included (their runtime settings are
    dropped: a model built from it runs with ``Runtime()``, no patch dropout, until configured otherwise)."""
    return ViTConfig(**architecture_dict(stored))
