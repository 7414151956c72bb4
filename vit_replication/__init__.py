"""vit_replication: the Vision Transformer (Dosovitskiy et al. 2020) equation by equation.

Eq. 1 ``embedding``, Eq. 2 ``attention`` + ``block``, Eq. 3 ``mlp`` + ``block``, Eq. 4 ``model``; ``convert`` loads
torchvision weights; ``data``, ``synthetic``, ``engine``, ``train``, ``attention_maps`` and ``visualize`` do the rest.
"""

from .model import CONFIGS, ViT, ViTConfig, create_vit

__all__ = ["CONFIGS", "ViT", "ViTConfig", "create_vit"]
