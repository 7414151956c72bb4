"""Load torchvision's VisionTransformer weights into our ViT.

torchvision keeps the same architecture under other names (``conv_proj``,
``encoder.layers.encoder_layer_i``, ``nn.MultiheadAttention``'s packed ``in_proj_weight``), so
conversion is a renaming of keys, after which both models give identical logits.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..download import fetch
from ..model.vit import ViT, ViTConfig

_LAYER_RENAMES = {
    "ln_1": "norm1", "ln_2": "norm2",
    "self_attention.in_proj_weight": "attention.qkv.weight", "self_attention.in_proj_bias": "attention.qkv.bias",
    "self_attention.out_proj": "attention.proj",
    "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2",
    "mlp.linear_1": "mlp.fc1", "mlp.linear_2": "mlp.fc2",  # older torchvision checkpoints
}
_TOP_RENAMES = {
    "class_token": "embedding.class_token", "conv_proj": "embedding.patch_embedding.proj",
    "encoder.pos_embedding": "embedding.position_embedding", "encoder.ln": "norm", "heads.head": "head",
}
_LAYER_KEY = re.compile(r"^encoder\.layers\.encoder_layer_(\d+)\.(.+)$")


def convert_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a torchvision ``VisionTransformer`` state dict to this package's names."""
    if any(key.startswith("heads.pre_logits") for key in state_dict):
        raise ValueError("torchvision models with representation_size (a pre-logits layer) are not supported")
    return {_rename(key): value for key, value in state_dict.items()}


def _rename(key: str) -> str:
    match = _LAYER_KEY.match(key)
    prefix, rest = (f"encoder.{match[1]}.", match[2]) if match else ("", key)
    for old, new in (_LAYER_RENAMES if match else _TOP_RENAMES).items():
        if rest == old or rest.startswith(old + "."):
            return prefix + new + rest[len(old):]
    raise KeyError(f"unexpected key in torchvision ViT state dict: {key}")


def config_from_torchvision(model: nn.Module) -> ViTConfig:
    """Read our ViTConfig off a torchvision ``VisionTransformer`` instance."""
    return ViTConfig(image_size=model.image_size, patch_size=model.patch_size, num_classes=model.num_classes,
                     hidden_dim=model.hidden_dim, num_layers=len(model.encoder.layers),
                     num_heads=model.encoder.layers[0].num_heads, mlp_dim=model.mlp_dim)


def vit_from_torchvision(model: nn.Module) -> ViT:
    """A ViT of ours with the same config and weights as a torchvision ``VisionTransformer``."""
    ours = ViT(config_from_torchvision(model))
    ours.load_state_dict(convert_torchvision_state_dict(model.state_dict()))
    return ours


def load_torchvision_pretrained(name: str = "vit_b_16", weights: str = "IMAGENET1K_V1") -> ViT:
    """torchvision's pretrained weights in our ViT; a ``DownloadError`` in one line when they cannot be had."""
    import torchvision

    model = fetch(f"torchvision's pretrained {name} ({weights})", "run once with internet access (weights are "
                  "cached in ~/.cache/torch/hub/checkpoints)",
                  lambda: getattr(torchvision.models, name)(weights=weights))
    return vit_from_torchvision(model)
