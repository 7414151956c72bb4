import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.model import ViTConfig  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_config() -> ViTConfig:
    """A ViT small enough for CPU tests: 16x16 images, 4x4 patches (16 patches + class token)."""
    return ViTConfig(image_size=16, patch_size=4, num_classes=10, hidden_dim=32, num_layers=2, num_heads=4, mlp_dim=64)
