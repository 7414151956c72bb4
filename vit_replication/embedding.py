"""Eq. 1 of the paper: patch embedding, class token and position embedding.

    z_0 = [x_class; x_p^1 E; x_p^2 E; ...; x_p^N E] + E_pos,
    E in R^{(P^2 C) x D},  E_pos in R^{(N + 1) x D}

An image of size H x W x C is cut into N = HW / P^2 patches of P x P pixels; each flattened patch is
projected to D = ``hidden_dim`` by the same linear map E. A Conv2d with kernel = stride = P computes exactly
that map on every patch at once (notebook 01 shows the two are equal).
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbedding(nn.Module):
    """Cut an image into P x P patches and project each to ``hidden_dim`` (the x_p E terms of Eq. 1)."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, in_channels: int = 3, hidden_dim: int = 768):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(
                f"image_size {image_size} is not divisible by patch_size {patch_size}: "
                f"the image cannot be cut into whole {patch_size}x{patch_size} patches"
            )
        self.image_size = image_size
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, N, D]."""
        check_image(x, self.in_channels, self.image_size)
        x = self.proj(x)  # [B, D, H/P, W/P]
        return x.flatten(2).transpose(1, 2)  # [B, N, D], patches in row-major order


def check_image(x: torch.Tensor, in_channels: int, image_size: int) -> None:
    """Raise a ValueError that says what is wrong when ``x`` is not a [B, C, H, W] batch of the expected size."""
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images [B, C, H, W], got a tensor of shape {tuple(x.shape)}")
    _, c, h, w = x.shape
    if c != in_channels:
        raise ValueError(f"expected {in_channels} input channels, got {c} (input shape {tuple(x.shape)})")
    if (h, w) != (image_size, image_size):
        raise ValueError(
            f"expected images of {image_size}x{image_size} pixels, got {h}x{w}; resize them, or build the "
            f"model with image_size={h} if H == W (position embeddings are learned for a fixed grid)"
        )


class ViTEmbedding(nn.Module):
    """All of Eq. 1: patch embeddings, a learnable class token in front, learnable position embeddings added,
    then dropout (the paper applies dropout after adding positional embeddings, Appendix B.1)."""

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        hidden_dim: int = 768,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.patch_embedding = PatchEmbedding(image_size, patch_size, in_channels, hidden_dim)
        num_tokens = self.patch_embedding.num_patches + 1
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))  # x_class
        self.position_embedding = nn.Parameter(torch.empty(1, num_tokens, hidden_dim))  # E_pos
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_patches(self) -> int:
        return self.patch_embedding.num_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> z_0 of shape [B, N + 1, D]."""
        patches = self.patch_embedding(x)
        class_token = self.class_token.expand(patches.shape[0], -1, -1)
        z0 = torch.cat([class_token, patches], dim=1) + self.position_embedding
        return self.dropout(z0)
