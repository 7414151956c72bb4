"""A width-varying ViT: the paper's ViT is a "tower" of constant width D; here stage s has
``stage_depths[s]`` layers of width ``stage_dims[s]``, and between stages every token, class token
included, goes through a learned linear map R^{D_s} -> R^{D_{s+1}}:

    z_0 = Eq. 1 at width D_1,   stage s: Eqs. 2-3 at width D_s,   z <- z W_s + b_s between stages,
    y = LN(pool(z_L)) at width D_S,   logits = y W_head                                    (Eq. 4)

D_h stays fixed (``head_dim``), so wider stages get more heads. The number of tokens never changes
(unlike pooling pyramids such as PiT); with one stage this is exactly the plain ViT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..model.block import EncoderBlock
from ..model.embedding import ViTEmbedding
from ..model.pooling import check_pool
from ..model.vit import Runtime, ViTBase, encode, init_weights


@dataclass(frozen=True)
class WidthVaryingConfig:
    """One entry per stage in ``stage_dims`` and ``stage_depths``; runtime settings are
    ``model.Runtime``, as for the ViT."""

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
            raise ValueError(f"stage_dims {self.stage_dims} and stage_depths {self.stage_depths} "
                             "need the same, non-zero length")
        for dim in self.stage_dims:
            if dim % self.head_dim:
                raise ValueError(f"stage width {dim} is not divisible by head_dim {self.head_dim}")
        check_pool(self.pool, f"{type(self).__name__}.pool")

    @property
    def num_layers(self) -> int:
        return sum(self.stage_depths)


class WidthVaryingViT(ViTBase):
    """Same interface as ``model.ViT``; keyword arguments override fields of the runtime."""

    def __init__(self, config: WidthVaryingConfig | None = None, runtime: Runtime | None = None,
                 **settings):
        super().__init__()
        self.config = config = config or WidthVaryingConfig()
        dims = config.stage_dims
        self.embedding = ViTEmbedding(config.image_size, config.patch_size, config.in_channels,
                                      dims[0], config.dropout)
        self.stages = nn.ModuleList(
            nn.ModuleList(EncoderBlock(dim, dim // config.head_dim, int(dim * config.mlp_ratio),
                                       config.dropout) for _ in range(depth))
            for dim, depth in zip(dims, config.stage_depths)
        )
        self.projections = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], config.num_classes)
        self.apply(init_weights)
        self.configure(runtime or self.default_runtime, **settings)

    def blocks(self) -> list[nn.Module]:
        return [block for stage in self.stages for block in stage]

    def forward_tokens(self, z: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, list]:
        """The stages in turn, every token projected R^{D_{s-1}} -> R^{D_s} between them."""
        attentions = []
        for s, stage in enumerate(self.stages):
            if s > 0:
                z = self.projections[s - 1](z)
            z = encode(stage, z, attentions if return_attention else None)
        return z, attentions
