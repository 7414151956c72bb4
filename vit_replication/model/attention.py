"""Eq. 2 of the paper: multi-head self-attention (Appendix A, Eqs. 5-8).

    [q, k, v] = z U_qkv                       U_qkv in R^{D x 3 D_h}      (5)
    A = softmax(q k^T / sqrt(D_h))            A in R^{N x N}              (6)
    SA(z) = A v                                                           (7)
    MSA(z) = [SA_1(z); ...; SA_k(z)] U_msa    U_msa in R^{k D_h x D}      (8)

With k = ``num_heads`` heads of size D_h = D / k, all heads' projections are one Linear(D, 3D).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadSelfAttention(nn.Module):
    """MSA written out step by step, or with PyTorch's fused ``scaled_dot_product_attention``
    (``use_sdpa``), the same function. Asked for A (``return_attention``), it runs the explicit
    path, since the fused kernels never materialise A."""

    def __init__(self, hidden_dim: int = 768, num_heads: int = 12, attn_dropout: float = 0.0,
                 use_sdpa: bool = True):
        super().__init__()
        if hidden_dim % num_heads != 0:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.head_dim = hidden_dim // num_heads  # D_h
        self.attn_dropout = attn_dropout
        self.use_sdpa = use_sdpa
        self.qkv = nn.Linear(hidden_dim, 3 * hidden_dim)  # U_qkv for all heads (Eq. 5)
        self.proj = nn.Linear(hidden_dim, hidden_dim)  # U_msa (Eq. 8)

    def split_heads(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 5: [B, N, D] -> q, k, v, each [B, heads, N, D_h]."""
        if z.ndim != 3 or z.shape[-1] != self.hidden_dim:
            raise ValueError(f"expected tokens [B, N, {self.hidden_dim}], got shape {tuple(z.shape)}")
        b, n, _ = z.shape
        qkv = self.qkv(z).reshape(b, n, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        return q, k, v

    def scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Eq. 6 before the softmax: q k^T / sqrt(D_h), [B, heads, N, N]."""
        return q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Eq. 6: A = softmax(q k^T / sqrt(D_h)); each row sums to 1."""
        return self.scores(q, k).softmax(dim=-1)

    def merge_heads(self, heads: torch.Tensor) -> torch.Tensor:
        """Eq. 8: concatenate the heads [B, heads, N, D_h] -> [B, N, D], then project with U_msa."""
        b, _, n, _ = heads.shape
        return self.proj(heads.transpose(1, 2).reshape(b, n, self.hidden_dim))

    def forward(
        self, z: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """[B, N, D] -> MSA(z) [B, N, D] (and A [B, heads, N, N] if asked)."""
        q, k, v = self.split_heads(z)
        dropout_p = self.attn_dropout if self.training else 0.0
        weights = None
        if self.use_sdpa and not return_attention:
            heads = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        else:
            weights = self.attention_weights(q, k)
            heads = F.dropout(weights, dropout_p) @ v  # Eq. 7, every head at once
        out = self.merge_heads(heads)
        return (out, weights) if return_attention else out
