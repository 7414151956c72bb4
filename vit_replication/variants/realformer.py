"""Residual attention (RealFormer, He et al. 2020, arXiv 2012.11747) on the ViT of this package.

Each layer adds the previous layer's pre-softmax scores to its own (Eq. 6 becomes):

    S_l = q_l k_l^T / sqrt(D_h) + S_{l-1},      A_l = softmax(S_l),      S_0 = 0

so the scores form a residual stream of their own beside the tokens of Eqs. 2-3. No parameter is
added: with the same config and seed, a RealFormer starts from the plain ViT's weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..model.attention import MultiHeadSelfAttention
from ..model.block import EncoderBlock
from ..model.vit import Runtime, ViT, ViTConfig


class ResidualAttention(MultiHeadSelfAttention):
    """MSA with ``prev_scores`` added to its scores; returns the output and the new scores S_l."""

    def forward(
        self, z: torch.Tensor, prev_scores: torch.Tensor | None = None, return_attention: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """(z, S_{l-1} or None) -> (MSA output, S_l[, A_l])."""
        q, k, v = self.split_heads(z)
        scores = self.scores(q, k)
        if prev_scores is not None:
            if prev_scores.shape != scores.shape:
                raise ValueError(f"prev_scores has shape {tuple(prev_scores.shape)}, "
                                 f"expected {tuple(scores.shape)}")
            scores = scores + prev_scores
        weights = scores.softmax(dim=-1)
        out = self.merge_heads(F.dropout(weights, self.attn_dropout if self.training else 0.0) @ v)
        return (out, scores, weights) if return_attention else (out, scores)


class RealFormerBlock(EncoderBlock):
    """Pre-LN encoder layer (Eqs. 2-3) that passes its scores on to the next layer."""

    attention_class = ResidualAttention

    def forward(self, z: torch.Tensor, prev_scores: torch.Tensor | None = None,
                return_attention: bool = False):
        """(z_{l-1}, S_{l-1}) -> (z_l, S_l[, A_l])."""
        out = self.attention(self.norm1(z), prev_scores, return_attention)
        z = z + self.drop_path(self.dropout(out[0]))  # Eq. 2
        z = z + self.drop_path(self.mlp(self.norm2(z)))  # Eq. 3
        return (z, *out[1:])


class RealFormerViT(ViT):
    """The ViT with ``RealFormerBlock`` layers (same parameter names); attention is always explicit,
    since the fused kernel never returns the scores."""

    default_runtime = Runtime(attention="explicit")

    @staticmethod
    def make_block(config: ViTConfig) -> nn.Module:
        return RealFormerBlock(config.hidden_dim, config.num_heads, config.mlp_dim, config.dropout,
                               config.attn_dropout, use_sdpa=False)

    def configure(self, runtime: Runtime | None = None, **changes) -> RealFormerViT:
        runtime = replace(runtime or self.runtime, **changes)
        if runtime.attention != "explicit":
            raise UserError("RealFormerViT needs attention='explicit': residual attention adds the "
                            "pre-softmax scores, which the fused SDPA kernel does not return")
        return super().configure(runtime)

    def forward_tokens(self, z: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, list]:
        """The scores S_l flow from layer to layer beside the tokens."""
        scores, attentions = None, []
        for block in self.encoder:
            z, scores, *weights = block(z, scores, return_attention)
            attentions += weights
        return z, attentions
