"""The paper's model, one equation a module: Eq. 1 ``embedding``, Eq. 2 ``attention``, Eq. 3 ``mlp``, both in
``block``, Eq. 4 ``vit`` (with ``pooling`` for the class token or GAP)."""

from .vit import (
    ATTENTIONS,
    CONFIGS,
    Runtime,
    ViT,
    ViTBase,
    ViTConfig,
    config_dict,
    config_from_dict,
    count_parameters,
    create_vit,
    expected_num_parameters,
    get_config,
)

__all__ = ["ATTENTIONS", "CONFIGS", "Runtime", "ViT", "ViTBase", "ViTConfig", "config_dict",
           "config_from_dict", "count_parameters", "create_vit", "expected_num_parameters", "get_config"]
