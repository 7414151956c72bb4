"""An exponential moving average (EMA) of a model's weights, the model that is evaluated when a recipe keeps one
(Polyak averaging; timm's ``ModelEmaV3``, DeiT's and the CCT recipes use it):

    theta_ema <- d * theta_ema + (1 - d) * theta,    after every optimizer step,

with d = min(decay, (1 + t) / (10 + t)) at step t, so that early on, when the weights move fast, the average follows
them closely instead of remembering the random initialisation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A copy of ``model`` (in eval mode, no gradients) whose weights and buffers follow ``model``'s as an EMA."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay of the next update: ``decay``, lower for the first steps (warm-up of the average)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """theta_ema <- d theta_ema + (1 - d) theta for every floating-point parameter and buffer of ``model``."""
        d = self.current_decay()
        averaged = [t for t in self._tensors(self.module) if t.is_floating_point()]
        current = [t.detach() for t in self._tensors(model) if t.is_floating_point()]
        torch._foreach_lerp_(averaged, current, 1 - d)
        self.updates += 1

    @staticmethod
    def _tensors(model: nn.Module) -> list[torch.Tensor]:
        return [*model.parameters(), *model.buffers()]

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.decay, self.updates = state["decay"], state["updates"]
