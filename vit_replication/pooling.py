"""Which of the encoder's output tokens the head reads (Eq. 4): the class token, y = LN(z_L^0), or the mean of the
patch tokens, y = LN(mean_i z_L^i) ("gap", the paper's App. D.3). One rule serves the model's head
(``ViTBase.pool``) and the attention maps (``attention_maps.pooled_row``), so the two cannot disagree.
"""

from __future__ import annotations

import torch

from .errors import UserError

POOLS = ("cls", "gap")


def check_pool(pool: str, owner: str = "pool") -> None:
    """A ``UserError`` naming ``owner`` unless ``pool`` is one of ``POOLS``."""
    if pool not in POOLS:
        raise UserError(f"{owner} must be one of {', '.join(POOLS)}, got {pool!r}")


def pool_tokens(z: torch.Tensor, pool: str, size: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens [..., N+1, D] (class token first) -> [..., D]: the class token for ``pool`` "cls" (Eq. 4), the mean of
    the N patch tokens for "gap" (App. D.3), each weighted by the patches it stands for when ``size`` [..., N+1, 1]
    is given (merged tokens, ToMe)."""
    check_pool(pool)
    if pool == "cls":
        return z[..., 0, :]
    if size is None:
        return z[..., 1:, :].mean(dim=-2)
    return (z[..., 1:, :] * size[..., 1:, :]).sum(dim=-2) / size[..., 1:, :].sum(dim=-2)
