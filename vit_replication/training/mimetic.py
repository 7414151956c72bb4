"""Mimetic initialisation of the attention layers (Trockman & Kolter, "Mimetic Initialization of Self-Attention
Layers", ICML 2023): a ViT trained from scratch on a small dataset starts with the attention that pretrained ViTs
end up with, instead of learning it from noise. Only the initial values of Eq. 5's and Eq. 8's weights change;
the model is the same plain ViT (Eqs. 1-4).

Per head h, the query and key projections are the two halves of a rank-D_h factorisation of alpha_1 Z + beta_1 I,

    W_q,h^T W_k,h ~ alpha_1 Z_1 + beta_1 I          (tokens attend to tokens like themselves: with position
                                                     embeddings that vary smoothly, to their neighbours)

and the value and output projections multiply to a damped negative identity,

    W_v^T U_msa^T = alpha_2 Z_2 - beta_2 I,

with Z uniform noise of variance 1/D. The learned position embeddings start as 2D sine-cosine ones
(``sincos_position_embedding``), which give neighbouring patches similar embeddings from the first step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INITS = ("timm", "mimetic")  # the recipe's choices: timm's truncated normal (the model's own), or this module's
QK = (0.7, 0.7)  # alpha_1, beta_1 (the paper's values for ViTs)
VO = (0.4, 0.4)  # alpha_2, beta_2


def ortho_like(dim: int, alpha: float, beta: float, sign: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A = alpha Z + sign beta I (Z uniform with variance 1/dim) and its factors L, R with L @ R = A, split
    evenly by the SVD: L = U sqrt(S), R = sqrt(S) V^T."""
    bound = math.sqrt(3.0 / dim)
    a = alpha * torch.empty(dim, dim).uniform_(-bound, bound) + sign * beta * torch.eye(dim)
    u, s, vh = torch.linalg.svd(a)
    root = s.sqrt()
    return u * root, root[:, None] * vh


@torch.no_grad()
def mimetic_attention_(attention: nn.Module, qk: tuple[float, float] = QK, vo: tuple[float, float] = VO) -> None:
    """Initialise one ``MultiHeadSelfAttention`` (``qkv``: Linear(D, 3D) as [q; k; v], ``proj``: U_msa) in place."""
    dim, head_dim = attention.hidden_dim, attention.head_dim
    weight = attention.qkv.weight  # [3D, D]; q = z W_q^T, so W_q^T W_k is the bilinear form of the scores
    for h in range(attention.num_heads):
        left, right = ortho_like(dim, *qk)
        rows = slice(h * head_dim, (h + 1) * head_dim)
        weight[rows] = left[:, :head_dim].T  # W_q,h [D_h, D]
        weight[dim:][rows] = right[:head_dim]  # W_k,h [D_h, D]
    left, right = ortho_like(dim, *vo, sign=-1)
    weight[2 * dim:] = left.T  # W_v [D, D]
    attention.proj.weight.copy_(right.T)  # out = z W_v^T U^T = z L R
    attention.qkv.bias.zero_()
    attention.proj.bias.zero_()


def sincos_position_embedding(grid_size: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """2D sine-cosine position embeddings [grid_size^2, dim] (row-major, as the patches are ordered): a quarter of
    the dimensions each for sin and cos of the column and of the row."""
    if dim % 4:
        raise ValueError(f"hidden_dim must be divisible by 4 for 2D sine-cosine embeddings, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(dim // 4) / max(dim // 4 - 1, 1))
    x, y = cols.flatten()[:, None] * omega, rows.flatten()[:, None] * omega
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=1)


@torch.no_grad()
def mimetic_init_(model: nn.Module) -> nn.Module:
    """Mimetic initialisation of every attention layer of ``model`` (a ``ViT``), and its learned position
    embeddings' patch rows set to 2D sine-cosine ones (the class token's row keeps its value)."""
    for block in model.blocks():
        mimetic_attention_(block.attention)
    embedding = model.embedding.position_embedding  # [1, 1 + N, D]
    grid = math.isqrt(embedding.shape[1] - 1)
    embedding[0, 1:] = sincos_position_embedding(grid, embedding.shape[2])
    return model


def initialise(model: nn.Module, init: str = "timm") -> nn.Module:
    """The recipe's initial weights for a freshly built ``model``: ``"timm"`` keeps the model's own (truncated
    normal, as timm and torchvision), ``"mimetic"`` applies ``mimetic_init_``. Returns the model."""
    return mimetic_init_(model) if init == "mimetic" else model
