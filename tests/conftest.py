import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))  # the notebooks' exercises

from vit_replication.model import ViTConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> ViTConfig:
    """A ViT small enough for CPU tests: 16x16 images, 4x4 patches (16 patches + class token)."""
    return ViTConfig(image_size=16, patch_size=4, num_classes=10, hidden_dim=32, num_layers=2, num_heads=4, mlp_dim=64)


class StepClock:
    """A clock for timing tests that does not depend on the machine: it stands still except when a model it
    ``hook``-ed runs a forward pass, which takes ``train_seconds`` of its time in training mode and ``eval_seconds``
    in eval mode. Timings taken with it are known exactly (steps x seconds, sums of powers of two)."""

    def __init__(self, train_seconds: float = 0.5, eval_seconds: float = 0.125):
        self.now, self.train_seconds, self.eval_seconds = 0.0, train_seconds, eval_seconds

    def __call__(self) -> float:
        return self.now

    def hook(self, model: torch.nn.Module, train_seconds: float | None = None,
             eval_seconds: float | None = None) -> torch.nn.Module:
        """Make every forward pass of ``model`` advance the clock (by its own seconds, if given); returns it."""
        train_s = self.train_seconds if train_seconds is None else train_seconds
        eval_s = self.eval_seconds if eval_seconds is None else eval_seconds

        def tick(module, args):
            self.now += train_s if module.training else eval_s

        model.register_forward_pre_hook(tick)
        return model


@pytest.fixture
def step_clock() -> StepClock:
    """A ``StepClock``: 0.5 s a training forward pass, 0.125 s an evaluation one."""
    return StepClock()
