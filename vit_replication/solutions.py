"""Reference solutions to the exercises of notebooks 01-06 (``exercises.py`` checks them; try first, then read).

    from vit_replication.solutions import patchify
    check("01.2", patchify)   # Exercise 01.2: right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .model import ViTConfig


def sequence_length(image_size: int, patch_size: int) -> int:  # 01.1
    return (image_size // patch_size) ** 2 + 1


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:  # 01.2
    B, C, H, W = x.shape
    P = patch_size
    x = x.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)


def embedding_parameters(image_size: int, patch_size: int, channels: int, hidden_dim: int) -> int:  # 01.3
    n = (image_size // patch_size) ** 2
    return patch_size**2 * channels * hidden_dim + hidden_dim + hidden_dim + (n + 1) * hidden_dim


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # 02.1
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


def msa_parameters(hidden_dim: int) -> int:  # 02.2
    return 4 * hidden_dim**2 + 4 * hidden_dim


def gelu(x: torch.Tensor) -> torch.Tensor:  # 03.1
    return x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def layer_norm(x: torch.Tensor, eps: float) -> torch.Tensor:  # 03.2
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def post_ln_layer(z, attention, mlp, norm1, norm2):  # 03.3
    z = norm1(z + attention(z))
    return norm2(z + mlp(z))


def vit_parameters(config: ViTConfig) -> int:  # 04.1
    d, d_mlp, k = config.hidden_dim, config.mlp_dim, config.num_classes
    embedding = embedding_parameters(config.image_size, config.patch_size, config.in_channels, d)
    layer = 4 * d + msa_parameters(d) + 2 * d * d_mlp + d_mlp + d
    return embedding + config.num_layers * layer + 2 * d + d * k + k


def gap_pool(z: torch.Tensor) -> torch.Tensor:  # 04.2
    return z[:, 1:].mean(dim=1)


def lr_at(step: int, peak: float, warmup_steps: int, total_steps: int) -> float:  # 05.1
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    done = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * done))


def smoothed_targets(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:  # 05.2
    return (1 - eps) * F.one_hot(labels, num_classes).float() + eps / num_classes


def uniform_distance(grid: int, patch_size: int) -> float:  # 06.1
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch_size
    return torch.cdist(centres, centres).mean().item()


def rollout(attentions: list[torch.Tensor]) -> torch.Tensor:  # 06.2
    tokens = attentions[0].shape[-1]
    eye = torch.eye(tokens)
    result = eye.expand(attentions[0].shape[0], -1, -1)
    for a in attentions:
        mixed = 0.5 * a.mean(dim=1) + 0.5 * eye
        mixed = mixed / mixed.sum(-1, keepdim=True)
        result = mixed @ result
    return result


SOLUTIONS = {"01.1": sequence_length, "01.2": patchify, "01.3": embedding_parameters, "02.1": attention,
             "02.2": msa_parameters, "03.1": gelu, "03.2": layer_norm, "03.3": post_ln_layer,
             "04.1": vit_parameters, "04.2": gap_pool, "05.1": lr_at, "05.2": smoothed_targets,
             "06.1": uniform_distance, "06.2": rollout}
