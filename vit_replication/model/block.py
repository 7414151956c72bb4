"""One Transformer encoder layer: Eq. 2 and Eq. 3 as pre-LN residual blocks.

    z'_l = MSA(LN(z_{l-1})) + z_{l-1}        (2)
    z_l  = MLP(LN(z'_l)) + z'_l              (3)

"Layernorm (LN) is applied before every block, and residual connections after every block"
(Sec. 3.1). DropPath (stochastic depth, Huang et al. 2016) is not in the paper; it helps when
training from scratch on small data.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadSelfAttention
from .mlp import MLPBlock


class DropPath(nn.Module):
    """While training, zero each sample's residual branch with probability p, else scale it up."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(drop_path: float, num_layers: int) -> list[float]:
    """0 at the first layer, rising linearly to ``drop_path`` at the last."""
    return [drop_path * i / max(num_layers - 1, 1) for i in range(num_layers)]


class EncoderBlock(nn.Module):
    """Pre-LN encoder layer: Eq. 2 (attention block), then Eq. 3 (MLP block)."""

    attention_class = MultiHeadSelfAttention  # RealFormer swaps in its own

    def __init__(self, hidden_dim: int = 768, num_heads: int = 12, mlp_dim: int = 3072,
                 dropout: float = 0.0, attn_dropout: float = 0.0, drop_path: float = 0.0,
                 use_sdpa: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.attention = self.attention_class(hidden_dim, num_heads, attn_dropout, use_sdpa)
        self.dropout = nn.Dropout(dropout)  # after U_msa, a dense layer (Appendix B.1)
        self.norm2 = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)
        self.drop_path = DropPath(drop_path)

    def forward(
        self, z: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """z_{l-1} -> z_l (and this layer's attention weights if asked)."""
        attn = self.attention(self.norm1(z), return_attention=return_attention)
        attn, weights = attn if return_attention else (attn, None)
        z = z + self.drop_path(self.dropout(attn))  # Eq. 2
        z = z + self.drop_path(self.mlp(self.norm2(z)))  # Eq. 3
        return (z, weights) if return_attention else z
