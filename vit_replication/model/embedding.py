"""Eq. 1 of the paper: patch embedding, class token and position embedding.

    z_0 = [x_class; x_p^1 E; x_p^2 E; ...; x_p^N E] + E_pos,
    E in R^{(P^2 C) x D},  E_pos in R^{(N + 1) x D}

An H x W x C image is cut into N = HW / P^2 patches of P x P pixels, each projected to D by the
same linear map E: a Conv2d with kernel = stride = P is exactly that map (notebook 01). Two runtime
settings, off by default: other image sizes, with E_pos interpolated in 2D (Sec. 3.2), and patch
dropout (Liu et al. 2022), which drops patch tokens while training so that a step costs less.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbedding(nn.Module):
    """Cut an image into P x P patches and project each to ``hidden_dim`` (the x_p E of Eq. 1)."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3,
                 hidden_dim: int = 768, dynamic_image_size: bool = False):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}: "
                             f"the image cannot be cut into whole {patch_size}x{patch_size} patches")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.dynamic_image_size = dynamic_image_size
        self.proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, N, D]."""
        check_image(x, self.in_channels, self.image_size, self.patch_size if self.dynamic_image_size else None)
        x = self.proj(x)  # [B, D, H/P, W/P]
        return x.flatten(2).transpose(1, 2)  # [B, N, D], patches in row-major order


def check_image(x: torch.Tensor, in_channels: int, image_size: int, patch_size: int | None = None) -> None:
    """Say what is wrong when ``x`` is not a [B, C, H, W] batch of the expected size; with
    ``patch_size``, any square size divisible by it is accepted."""
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images [B, C, H, W], got a tensor of shape {tuple(x.shape)}")
    _, c, h, w = x.shape
    if c != in_channels:
        raise ValueError(f"expected {in_channels} input channels, got {c} (input shape {tuple(x.shape)})")
    if patch_size is not None:
        if h != w or h % patch_size:
            raise ValueError(f"expected square images whose side is divisible by the patch size "
                             f"{patch_size}, got {h}x{w}")
    elif (h, w) != (image_size, image_size):
        raise ValueError(f"expected images of {image_size}x{image_size} pixels, got {h}x{w}; resize "
                         f"them, or build the model with image_size={h} if H == W (position "
                         f"embeddings are learned for a fixed grid)")


def resample_position_embedding(position_embedding: torch.Tensor, grid_size: int) -> torch.Tensor:
    """E_pos [1, 1 + g*g, D] -> [1, 1 + grid_size^2, D] (Sec. 3.2): the class token's row kept, the
    patch rows resized bicubically as a g x g image of D channels."""
    cls, patches = position_embedding[:, :1], position_embedding[:, 1:]
    old = math.isqrt(patches.shape[1])
    if old * old != patches.shape[1]:
        raise ValueError(f"position embedding of {patches.shape[1]} patch rows is not a square grid")
    if grid_size == old:
        return position_embedding
    grid = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)  # [1, D, g, g]
    grid = F.interpolate(grid.float(), size=(grid_size, grid_size), mode="bicubic",
                         align_corners=False, antialias=grid_size < old).to(patches.dtype)
    return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, grid_size * grid_size, -1)], dim=1)


def kept_patches(num_patches: int, p: float = 0.0) -> int:
    """Patch tokens an image keeps under patch dropout ``p``."""
    return max(1, int(num_patches * (1.0 - p)))


class PatchDropout(nn.Module):
    """While training, keep a random ``1 - p`` share of each image's patch tokens (at least one);
    the first ``num_prefix`` tokens (the class token) always stay."""

    def __init__(self, p: float = 0.0, num_prefix: int = 1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"patch dropout must be in [0, 1), got {p}")
        self.p, self.num_prefix = p, num_prefix

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return z
        prefix, patches = z[:, :self.num_prefix], z[:, self.num_prefix:]
        b, n, d = patches.shape
        keep = torch.rand(b, n, device=z.device).argsort(dim=1)[:, :kept_patches(n, self.p)]
        return torch.cat([prefix, patches.gather(1, keep.unsqueeze(-1).expand(-1, -1, d))], dim=1)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ViTEmbedding(nn.Module):
    """All of Eq. 1: patch embeddings, the class token in front, position embeddings added, then
    dropout (Appendix B.1) and patch dropout."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, hidden_dim: int = 768,
                 dropout: float = 0.0, patch_dropout: float = 0.0, dynamic_image_size: bool = False):
        super().__init__()
        self.patch_embedding = PatchEmbedding(image_size, patch_size, in_channels, hidden_dim, dynamic_image_size)
        num_tokens = self.patch_embedding.num_patches + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))  # x_class
        self.position_embedding = nn.Parameter(torch.empty(1, num_tokens, hidden_dim))  # E_pos
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.patch_dropout = PatchDropout(patch_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> z_0 [B, N + 1, D] (fewer tokens while training with patch dropout)."""
        patches = self.patch_embedding(x)
        class_token = self.class_token.expand(patches.shape[0], -1, -1)
        position = resample_position_embedding(self.position_embedding, math.isqrt(patches.shape[1]))
        z0 = torch.cat([class_token, patches], dim=1) + position
        return self.patch_dropout(self.dropout(z0))
