"""A width-varying ViT: the embedding dimension grows across stages, with a linear projection between stages.

The paper's ViT is a "tower": every layer has the same width D. Here the encoder is split into stages
s = 1..S of ``stage_depths[s]`` layers of width ``stage_dims[s]``; between stages every token (class token
included) goes through a learned linear map R^{D_s} -> R^{D_{s+1}}:

    z_0 = Eq. 1 at width D_1,      stage s: Eqs. 2-3 at width D_s,      z <- z W_s + b_s between stages,
    y = LN(pool(z_L)) at width D_S,    logits = y W_head                                         (Eq. 4)

Head size D_h stays fixed (``head_dim``), so wider stages get more heads; each MLP is ``mlp_ratio`` x its width.
The number of tokens never changes (unlike pooling pyramids such as PiT): only the width does. With one stage it is
exactly the plain ViT (tests/test_width_varying.py loads a ViT's weights into it and compares logits).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .block import EncoderBlock
from .embedding import ViTEmbedding
from .model import Runtime, ViTBase, encode, init_weights
from .pooling import check_pool


@dataclass(frozen=True)
class WidthVaryingConfig:
    """Architecture of a width-varying ViT; ``stage_dims`` and ``stage_depths`` have one entry per stage. Runtime
    settings (drop path, patch dropout, attention kernel) are ``model.Runtime``, as for the ViT."""

    image_size: int = 32
    patch_size: int = 4
    in_channels: int = 3
    num_classes: int = 10
    stage_dims: tuple[int, ...] = (96, 128, 192)
    stage_depths: tuple[int, ...] = (2, 2, 2)
    head_dim: int = 32  # D_h, the same in every stage
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    pool: str = "cls"  # "cls": y = LN(z_L^0) (Eq. 4); "gap": y = LN(mean of the patch tokens)

    def __post_init__(self):
        if not self.stage_dims or len(self.stage_dims) != len(self.stage_depths):
            raise ValueError(f"stage_dims {self.stage_dims} and stage_depths {self.stage_depths} need the same, "
                             "non-zero length")
        for dim in self.stage_dims:
            if dim % self.head_dim:
                raise ValueError(f"stage width {dim} is not divisible by head_dim {self.head_dim}")
        check_pool(self.pool, f"{type(self).__name__}.pool")

    @property
    def num_layers(self) -> int:
        return sum(self.stage_depths)


class WidthVaryingViT(ViTBase):
    """ViT whose width grows stage by stage (``WidthVaryingConfig``); same interface as ``model.ViT``, whose pooling,
    final LN and head it shares: only the token loop (``forward_tokens``) differs.
    ``WidthVaryingViT(config, runtime)``; keyword arguments override fields of the runtime (``drop_path=0.1``)."""

    def __init__(self, config: WidthVaryingConfig | None = None, runtime: Runtime | None = None, **settings):
        super().__init__()
        self.config = config = config or WidthVaryingConfig()
        dims = config.stage_dims
        self.embedding = ViTEmbedding(config.image_size, config.patch_size, config.in_channels, dims[0],
                                      config.dropout)
        self.stages = nn.ModuleList(
            nn.ModuleList(
                EncoderBlock(dim, dim // config.head_dim, int(dim * config.mlp_ratio), config.dropout)
                for _ in range(depth)
            )
            for dim, depth in zip(dims, config.stage_depths)
        )
        self.projections = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], config.num_classes)
        self.apply(init_weights)
        self.configure(runtime or self.default_runtime, **settings)

    def blocks(self) -> list[nn.Module]:
        """The encoder layers of every stage, first to last."""
        return [block for stage in self.stages for block in stage]

    def forward_tokens(self, z: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, list]:
        """z_0 [B, N+1, D_1] -> (z_L [B, N+1, D_S], each layer's attention if asked): the stages in turn, every
        token projected R^{D_{s-1}} -> R^{D_s} between them."""
        attentions = []
        for s, stage in enumerate(self.stages):
            if s > 0:
                z = self.projections[s - 1](z)
            z = encode(stage, z, attentions if return_attention else None)
        return z, attentions
