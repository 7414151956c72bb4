"""Which output tokens the head reads (Eq. 4): the class token, y = LN(z_L^0), or the mean of the
patch tokens ("gap", App. D.3). The head and the attention maps share this rule, so they agree."""

from __future__ import annotations

import torch

from ..errors import UserError

POOLS = ("cls", "gap")


def check_pool(pool: str, owner: str = "pool") -> None:
    if pool not in POOLS:
        raise UserError(f"{owner} must be one of {', '.join(POOLS)}, got {pool!r}")


def pool_tokens(z: torch.Tensor, pool: str, size: torch.Tensor | None = None) -> torch.Tensor:
    """[..., N+1, D] -> [..., D]; for "gap", each token weighted by the patches it stands for when
    ``size`` [..., N+1, 1] is given (merged tokens, ToMe)."""
    check_pool(pool)
    if pool == "cls":
        return z[..., 0, :]
    if size is None:
        return z[..., 1:, :].mean(dim=-2)
    return (z[..., 1:, :] * size[..., 1:, :]).sum(dim=-2) / size[..., 1:, :].sum(dim=-2)
