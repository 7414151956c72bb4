"""What the classifier's input looks at: per-head attention of one layer, and attention rollout over all layers.

Attention rollout (Abnar & Zuidema 2020, used for the paper's Fig. 6 and App. D.8) follows attention through the
residual stream: each layer's head-averaged attention A_l is mixed with the identity for the skip connection, rows
are renormalised, and the layers are multiplied:

    Ã_l = normalise(0.5 A_l + 0.5 I),     R = Ã_L Ã_{L-1} ... Ã_1

Row 0 of R, without its own column, says how much each patch flows into the class token, which Eq. 4 classifies
(``pool`` "cls"). With ``pool`` "gap" the head sees the mean of the patch tokens (App. D.3), so the maps are the
mean of the patch tokens' rows (``pooled_row``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..model.pooling import pool_tokens


def _grid(num_tokens: int) -> int:
    """Side of the square patch grid for ``num_tokens`` tokens (class token + N patches)."""
    side = math.isqrt(num_tokens - 1)
    if side * side != num_tokens - 1:
        raise ValueError(f"{num_tokens} tokens are not a class token plus a square grid of patches")
    return side


def pooled_row(matrix: torch.Tensor, pool: str = "cls") -> torch.Tensor:
    """The row of a token-to-token matrix [..., N+1, N+1] that feeds the head, over the patches [..., N]: the
    class token's row for "cls" (Eq. 4), the mean of the patch tokens' rows for "gap" (App. D.3)."""
    return pool_tokens(matrix, pool)[..., 1:]


def cls_attention(attention: torch.Tensor, pool: str = "cls") -> torch.Tensor:
    """One layer's attention [B, heads, N+1, N+1] -> the pooled row's attention to each patch [B, heads, g, g]."""
    if attention.ndim != 4:
        raise ValueError(f"expected attention [B, heads, N+1, N+1], got shape {tuple(attention.shape)}")
    side = _grid(attention.shape[-1])
    return pooled_row(attention, pool).reshape(attention.shape[0], attention.shape[1], side, side)


def attention_rollout(attentions: list[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Rollout R [B, N+1, N+1] of L attention tensors [B, heads, N+1, N+1], first layer first; each
    row of R is a probability distribution."""
    if not attentions:
        raise ValueError("attention rollout needs the attention of at least one layer")
    fuse = {"mean": lambda a: a.mean(dim=1), "max": lambda a: a.amax(dim=1), "min": lambda a: a.amin(dim=1)}
    if head_fusion not in fuse:
        raise ValueError(f"head_fusion must be one of {', '.join(fuse)}, got {head_fusion!r}")
    eye = torch.eye(attentions[0].shape[-1], device=attentions[0].device, dtype=torch.float32)
    rollout = eye.expand(attentions[0].shape[0], -1, -1)
    for attention in attentions:
        mixed = 0.5 * fuse[head_fusion](attention.float()) + 0.5 * eye
        rollout = (mixed / mixed.sum(dim=-1, keepdim=True)) @ rollout
    return rollout


def rollout_map(attentions: list[torch.Tensor], head_fusion: str = "mean", pool: str = "cls") -> torch.Tensor:
    """The pooled row of the rollout over the patches, scaled to [0, 1] per image: [B, g, g]."""
    rollout = attention_rollout(attentions, head_fusion)
    side = _grid(rollout.shape[-1])
    return normalise_maps(pooled_row(rollout, pool).reshape(-1, side, side))


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map [..., g, g] to [0, 1] (min-max over its last two dimensions)."""
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return (maps - low) / (high - low).clamp_min(1e-12)


def upsample_maps(maps: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bilinear resize of maps [..., g, g] to [..., image_size, image_size] for overlaying on the image."""
    shape = maps.shape
    flat = maps.reshape(-1, 1, shape[-2], shape[-1]).float()
    up = F.interpolate(flat, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return up.reshape(*shape[:-2], image_size, image_size)


def _patch_distances(side: int, patch_size: int) -> torch.Tensor:
    """[N, N] pixels between the centres of the patches of a ``side`` x ``side`` grid."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch_size
    return torch.cdist(centres, centres)


def mean_attention_distance(attentions: list[torch.Tensor], patch_size: int) -> torch.Tensor:
    """Paper Fig. 7 (right): for each layer and head [L, heads], the distance in pixels between a
    patch and the patches it attends to, weighted by attention (analogous to a CNN's receptive field
    size). Patch-to-patch attention only: the class token has no position."""
    distances = _patch_distances(_grid(attentions[0].shape[-1]), patch_size)
    result = []
    for attention in attentions:
        patch_attention = attention[:, :, 1:, 1:].float()
        patch_attention = patch_attention / patch_attention.sum(-1, keepdim=True)  # without the class token
        result.append((patch_attention * distances.to(attention.device)).sum(-1).mean(dim=(0, 2)))
    return torch.stack(result).cpu()


def uniform_attention_distance(grid_size: int, patch_size: int) -> float:
    """The mean attention distance of a head that attends to every patch equally: the reference that
    separates local heads (below it) from global ones (near it)."""
    return _patch_distances(grid_size, patch_size).mean().item()


def position_similarity(position_embedding: torch.Tensor) -> torch.Tensor:
    """Cosine similarity [N, N] of the patches' position embeddings [N, D] (paper Fig. 7, centre)."""
    embeddings = F.normalize(position_embedding.detach().float().cpu(), dim=-1)
    return embeddings @ embeddings.T


def least_similar_positions(position_embedding: torch.Tensor, patches: list[int]) -> dict[int, tuple[int, float]]:
    """For each index of ``patches``: the patch whose position embedding is least like its own, and
    their cosine similarity."""
    similarity = position_similarity(position_embedding)
    return {i: (int(similarity[i].argmin()), float(similarity[i].min())) for i in patches}
