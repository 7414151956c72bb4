"""The optimiser: AdamW with weight decay on weight matrices only, as in the paper (Table 3), or Muon on the
encoder's weight matrices and AdamW on the rest (``muon``). The learning rate it is given follows ``schedule``."""

from __future__ import annotations

import torch
from torch import nn

from .muon import MuonAdamW, hidden_matrices

OPTIMIZERS = ("adamw", "muon")


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05, betas=(0.9, 0.999),
                    optimizer: str = "adamw", precision: str = "fp32") -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (not on biases, LayerNorms, class token, positions); with
    ``optimizer="muon"``, the encoder blocks' weight matrices take Muon's steps instead (``muon.MuonAdamW``),
    orthogonalised in bf16 when the run's ``precision`` is bf16, else in fp32."""
    muon_names = hidden_matrices(model) if optimizer == "muon" else set()
    hidden, decay, no_decay = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.ndim >= 2 and name.endswith("weight")  # Linear and Conv2d weights
        (hidden if name in muon_names else decay if is_matrix else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if optimizer == "muon":
        ns_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        return MuonAdamW([{"params": hidden, "muon": True}, *groups], lr=lr, weight_decay=weight_decay, betas=betas,
                         ns_dtype=ns_dtype)
    fused = all(p.is_cuda for p in decay + no_decay) and bool(decay + no_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused or None)
