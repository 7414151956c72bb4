"""The optimisation recipe: AdamW with weight decay on weight matrices only (or Muon on the encoder's weight matrices
and AdamW on the rest: ``muon``), a learning rate that warms up linearly and then decays to zero (per step) along a
cosine or a straight line, and a label-smoothed cross-entropy.
``training_setup`` builds all three; the command line, ``compare`` and notebook 05 use it, so that every training in
the project follows one recipe.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import UserError
from .muon import MuonAdamW, hidden_matrices

OPTIMIZERS = ("adamw", "muon")


def build_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05, betas=(0.9, 0.999),
                    optimizer: str = "adamw", precision: str = "fp32") -> torch.optim.Optimizer:
    """AdamW with weight decay on weight matrices only (not on biases, LayerNorms, class token, positions); with
    ``optimizer="muon"``, the encoder blocks' weight matrices take Muon's steps instead (``muon.MuonAdamW``),
    orthogonalised in bf16 when the run's ``precision`` is bf16, else in fp32."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
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


DECAYS = ("cosine", "linear", "wsd")
# decay="wsd" (warm-up, stable, decay: Hu et al. 2024; Haegele et al. 2024): the peak learning rate held until the
# last WSD_COOLDOWN of the steps, then a straight line to zero over them (Haegele et al.'s 20 % cool-down)
WSD_COOLDOWN = 0.2


def warmup_steps(warmup_epochs: float, epochs: int, steps_per_epoch: int) -> int:
    """The warm-up's steps in a run of ``epochs`` epochs: ``warmup_epochs`` of them, cut to the whole run."""
    return min(int(warmup_epochs * steps_per_epoch), epochs * steps_per_epoch)


def decay_start(warmup_steps: int, total_steps: int, decay: str) -> int:
    """The step from which the learning rate falls: the warm-up's end, or for "wsd" the start of its cool-down (the
    peak is held until then). Up to it, schedules of any ``total_steps`` give the same learning rates."""
    return max(warmup_steps, total_steps - round(WSD_COOLDOWN * total_steps)) if decay == "wsd" else warmup_steps


def warmup_decay(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, decay: str = "cosine",
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly over ``warmup_steps``, then falling to ``min_lr_ratio`` x peak along a cosine
    or a straight line (``decay``; a linear decay to zero suits a fixed budget: Defazio et al. 2023), or held at the
    peak and falling along a line over the last ``WSD_COOLDOWN`` of the ``total_steps`` ("wsd")."""
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need 0 <= warmup_steps <= total_steps and total_steps > 0, got {warmup_steps}, {total_steps}"
        )
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {', '.join(DECAYS)}, got {decay!r}")

    stable = decay_start(warmup_steps, total_steps, decay)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(max(step - stable, 0) / max(total_steps - stable, 1), 1.0)
        left = 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1 - progress
        return min_lr_ratio + (1 - min_lr_ratio) * left

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def rescheduled(scheduler: torch.optim.lr_scheduler.LambdaLR, epochs: int, steps_per_epoch: int,
                warmup_epochs: float = 1.0, decay: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule of ``training_setup`` for ``epochs`` epochs instead, on the same optimizer, continuing at the
    step ``scheduler`` has reached (the optimizer's learning rates kept as they are). Exact up to ``decay_start`` of
    both lengths, where the schedules agree: in the warm-up, and for "wsd" while the peak is held
    (``budget.fit_planned`` uses it there)."""
    optimizer, steps = scheduler.optimizer, epochs * steps_per_epoch
    lrs = [group["lr"] for group in optimizer.param_groups]
    new = warmup_decay(optimizer, warmup_steps(warmup_epochs, epochs, steps_per_epoch), steps, decay)
    new.load_state_dict(scheduler.state_dict())
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr
    return new


def training_setup(
    model: nn.Module, lr: float, epochs: int, steps_per_epoch: int, warmup_epochs: float = 1.0,
    weight_decay: float = 0.05, label_smoothing: float = 0.1, decay: str = "cosine", optimizer: str = "adamw",
    precision: str = "fp32",
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, nn.CrossEntropyLoss]:
    """(optimizer, per-step warm-up + ``decay`` scheduler, label-smoothed loss) for ``epochs`` epochs of
    ``steps_per_epoch`` steps; the warm-up is cut to the whole schedule if it would be longer. ``optimizer`` and
    ``precision``: ``build_optimizer``'s."""
    if epochs < 1 or steps_per_epoch < 1:
        raise UserError(f"training needs at least one epoch of at least one step, got {epochs} epoch(s) of "
                        f"{steps_per_epoch} step(s): raise --epochs, or lower --batch-size below the training set size")
    steps = epochs * steps_per_epoch
    built = build_optimizer(model, lr, weight_decay, optimizer=optimizer, precision=precision)
    scheduler = warmup_decay(built, warmup_steps(warmup_epochs, epochs, steps_per_epoch), steps, decay)
    return built, scheduler, nn.CrossEntropyLoss(label_smoothing=label_smoothing)
