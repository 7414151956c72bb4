"""Muon on the Transformer's weight matrices, AdamW on everything else, in one optimizer.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers") keeps a momentum of each weight matrix's gradient
and steps along its *orthogonalised* version: the matrix $O = UV^\\top$ of the momentum's singular value decomposition
$M = U S V^\\top$, so that every direction the gradient points in moves the weights by the same amount, not only
the few large ones. Five Newton-Schulz iterations approximate $O$ with matrix products alone
(``newton_schulz``). It is meant for the hidden matrices (Eqs. 2-3's $W_{qkv}$, $W_o$ and the MLP's two layers);
the patch embedding, the class token, the position embeddings, LayerNorms, biases and the head stay on AdamW
(Eq. 1's and Eq. 4's parameters). Update sizes follow "Muon is scalable for LLM training" (Liu et al. 2025): each
orthogonalised step is scaled by $0.2\\sqrt{\\max(A, B)}$ for an $A \\times B$ matrix, which gives it about AdamW's
update size, so one learning rate and one weight decay serve both (``torch.optim.Muon``'s ``"match_rms_adamw"``).
The model at inference is the same plain ViT: only the training steps differ.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.adam import adam

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Jordan et al.'s quintic iteration (as torch.optim.Muon's)


def newton_schulz(matrices: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonal matrices with the singular vectors of ``matrices`` (one, or a stack ``(..., A, B)``),
    singular values near 1 (after 5 steps between about 0.5 and 1.2 for those above a hundredth of the largest;
    smaller ones are lifted less, and zeros stay zero): the quintic iteration
    $X \\leftarrow aX + (bXX^\\top + c(XX^\\top)^2)X$ from $X$ scaled to spectral norm at most 1, on the wide
    orientation (so that $XX^\\top$ is the smaller Gram matrix), in the dtype given (the optimizer's is bf16)."""
    a, b, c = NS_COEFFICIENTS
    tall = matrices.size(-2) > matrices.size(-1)
    x = matrices.mT if tall else matrices
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # the Frobenius norm bounds the spectral norm
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


def muon_scale(shape: torch.Size) -> float:
    """The factor on an orthogonalised step of an ``A x B`` matrix that matches AdamW's update size:
    0.2 sqrt(max(A, B))."""
    return 0.2 * math.sqrt(max(shape[0], shape[1]))


def orthogonalised(updates: list[torch.Tensor], steps: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """``newton_schulz`` of each update in ``dtype``, the matrices of one shape stacked into one batch (one product
    per shape and step instead of one per matrix), returned in ``updates``' order and dtype."""
    by_shape: dict[torch.Size, list[int]] = {}
    for index, update in enumerate(updates):
        by_shape.setdefault(update.shape, []).append(index)
    result: list[torch.Tensor] = [torch.empty(0)] * len(updates)
    for indices in by_shape.values():
        stacked = newton_schulz(torch.stack([updates[i] for i in indices]).to(dtype), steps)
        for i, matrix in zip(indices, stacked.to(updates[indices[0]].dtype).unbind()):
            result[i] = matrix
    return result


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer over two kinds of parameter group: ``muon=True`` groups (2-D weight matrices) take Muon's step
    with Nesterov momentum ``momentum``, orthogonalised in ``ns_dtype`` (bf16 as in Jordan et al. and
    ``torch.optim.Muon`` where the run trains in bf16, else fp32: a CPU without native bf16 emulates it, and on this
    2-core CPU with oneDNN held to AVX2 a step's orthogonalisation took 13 times as long in bf16 as in fp32); the
    others AdamW's with ``betas`` and ``eps``. Both decay the weights by ``lr * weight_decay`` per step (decoupled).
    One optimizer, so that a learning-rate schedule, gradient clipping and checkpoints treat it as any other."""

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.05, momentum: float = 0.95,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, ns_steps: int = 5,
                 ns_dtype: torch.dtype = torch.bfloat16):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, betas=betas, eps=eps,
                        ns_steps=ns_steps, muon=False)
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            if group["muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("muon groups take 2-D weight matrices only")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])  # decoupled weight decay
                (self._muon_step if group["muon"] else self._adamw_step)(params, group)
        return loss

    def _muon_step(self, params: list[torch.Tensor], group: dict) -> None:
        """Momentum $B \\leftarrow \\mu B + g$, Nesterov's look-ahead $g + \\mu B$, orthogonalised and scaled."""
        grads = [p.grad for p in params]
        buffers = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
        torch._foreach_mul_(buffers, group["momentum"])
        torch._foreach_add_(buffers, grads)
        updates = torch._foreach_add(grads, buffers, alpha=group["momentum"])
        for param, update in zip(params, orthogonalised(updates, group["ns_steps"], self.ns_dtype)):
            param.add_(update, alpha=-group["lr"] * muon_scale(param.shape))

    def _adamw_step(self, params: list[torch.Tensor], group: dict) -> None:
        """Adam's bias-corrected step, by ``torch.optim.adam.adam`` (the weight decay was applied in ``step``)."""
        states = [self.state[p] for p in params]
        for state, param in zip(states, params):
            if "step" not in state:
                state.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(param),
                             exp_avg_sq=torch.zeros_like(param))
        beta1, beta2 = group["betas"]
        adam(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
             [], [s["step"] for s in states], foreach=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
             weight_decay=0.0, eps=group["eps"], maximize=False)


def hidden_matrices(model: nn.Module) -> set[str]:
    """The names of Muon's parameters in a ViT: the 2-D weights of the encoder's blocks (Eqs. 2-3), not the head's
    (Eq. 4) nor the embedding's (Eq. 1). A ``ValueError`` for a model without a ``head`` (the CNN), whose matrices
    this rule cannot tell apart."""
    if not hasattr(model, "head"):
        raise ValueError("optimizer muon is for the ViTs (the matrices of their encoder, not their head); "
                         f"use adamw for {type(model).__name__}")
    return {name for name, param in model.named_parameters()
            if param.ndim == 2 and name.endswith("weight") and not name.startswith(("head", "embedding"))}
