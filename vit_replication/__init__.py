"""vit_replication: the Vision Transformer (Dosovitskiy et al. 2020) equation by equation.

Eq. 1 ``embedding``, Eq. 2 ``attention`` + ``block``, Eq. 3 ``mlp`` + ``block``, Eq. 4 ``model``; ``convert`` and
``npz`` load torchvision and Google weights; ``data``, ``synthetic``, ``augment``, ``engine``, ``train``,
``attention_maps`` and ``visualize`` do the rest. Variants: ``realformer``, ``width_varying``, ``tome``, ``transfer``,
compared by ``compare``.
"""

from .model.vit import CONFIGS, ViT, ViTConfig, create_vit

# The GitHub repository the notebooks' Colab badges and setup cells name (tests/test_notebooks.py checks they agree).
REPOSITORY = "vit-replication/vit_replication"

__all__ = ["CONFIGS", "REPOSITORY", "ViT", "ViTConfig", "create_vit"]
