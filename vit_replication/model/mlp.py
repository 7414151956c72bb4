"""Eq. 3 of the paper: the MLP of each encoder block ("two layers with a GELU non-linearity",
Sec. 3.1), with dropout after every dense layer (Appendix B.1).

    MLP(x) = Dropout(W_2 Dropout(GELU(W_1 x + b_1)) + b_2),   W_1 in R^{D x mlp_dim}
"""

from __future__ import annotations

import torch
from torch import nn


class MLPBlock(nn.Module):
    def __init__(self, hidden_dim: int = 768, mlp_dim: int = 3072, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(hidden_dim, mlp_dim)
        self.act = nn.GELU()  # exact (erf) GELU, as in the paper's JAX code and torchvision
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(mlp_dim, hidden_dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))
