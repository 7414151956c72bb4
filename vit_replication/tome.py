"""Token merging (ToMe, Bolya et al. 2022, arXiv 2210.09461): a trained ViT runs faster, without retraining, by
merging the r most similar tokens in every layer.

In each encoder layer, between the attention block (Eq. 2) and the MLP block (Eq. 3):

1. **Bipartite soft matching.** Split the tokens alternately into sets A and B; connect each token of A to its most
   similar token of B (cosine similarity of the attention keys, averaged over heads); keep the r most similar
   edges and merge each of those A tokens into its B partner. The class token is never merged.
2. **Weighted average.** A merged token is the size-weighted mean of its parts; ``size`` counts the patches (and
   class token) it stands for.
3. **Proportional attention.** A token of size s should attract as much attention as its s parts would have:
   A = softmax(q k^T / sqrt(D_h) + log s), which gives exactly the attention over the unmerged copies
   (tests/test_tome.py checks that identity).

After L layers the sequence has N + 1 - L r tokens. ``r = 0`` gives the plain ViT's logits. With
``pool="gap"`` the final patch tokens are averaged weighted by their size, so each patch counts once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadSelfAttention
from .block import EncoderBlock
from .model import ViT


@dataclass
class MergePlan:
    """Which tokens of set A (even positions) merge into which tokens of set B (odd positions)."""

    unmerged: torch.Tensor  # [B, |A| - r, 1] positions in A that stay, in their original order
    source: torch.Tensor  # [B, r, 1] positions in A that merge away
    destination: torch.Tensor  # [B, r, 1] positions in B that receive them


def bipartite_soft_matching(metric: torch.Tensor, r: int, protect_class_token: bool = True) -> MergePlan:
    """The r most similar (A, B) pairs of ``metric`` [B, N, C] by cosine similarity, A = even, B = odd tokens."""
    a_count = (metric.shape[1] + 1) // 2
    if not 0 <= r <= a_count - int(protect_class_token):
        raise ValueError(f"cannot merge r={r} tokens: set A has {a_count} tokens"
                         + (" including the protected class token" if protect_class_token else ""))
    metric = metric / metric.norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)  # [B, |A|, |B|]
    if protect_class_token:
        scores[:, 0, :] = -float("inf")  # the class token (position 0, in A) is never a source
    best, best_partner = scores.max(dim=-1)  # each A token's most similar B token
    order = best.argsort(dim=-1, descending=True)[..., None]
    unmerged = order[:, r:].sort(dim=1).values  # sorted: the class token stays first
    source = order[:, :r]
    return MergePlan(unmerged, source, best_partner[..., None].gather(1, source))


def merge(x: torch.Tensor, plan: MergePlan, reduce: str = "sum") -> torch.Tensor:
    """Apply ``plan`` to x [B, N, C]: unmerged A tokens, then B tokens with their merged A tokens reduced in."""
    a, b = x[:, ::2], x[:, 1::2]
    batch, _, channels = a.shape
    unmerged = a.gather(1, plan.unmerged.expand(batch, -1, channels))
    source = a.gather(1, plan.source.expand(batch, -1, channels))
    b = b.scatter_reduce(1, plan.destination.expand(batch, -1, channels), source, reduce=reduce)
    return torch.cat([unmerged, b], dim=1)


def merge_weighted(x: torch.Tensor, size: torch.Tensor, plan: MergePlan) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average of merged tokens; returns (tokens, their new sizes [B, N', 1])."""
    x = merge(x * size, plan, "sum")
    size = merge(size, plan, "sum")
    return x / size, size


def proportional_attention(
    attention: MultiHeadSelfAttention, z: torch.Tensor, size: torch.Tensor | None, return_attention: bool = False
) -> tuple[torch.Tensor, ...]:
    """MSA (Eqs. 5-8) with log(size) added to every key's score; returns the output and the keys averaged over
    heads [B, N, D_h] (ToMe's similarity metric), and A = softmax(q k^T / sqrt(D_h) + log s) [B, heads, N, N] if
    asked (computed explicitly then, as the fused kernel never materialises it)."""
    q, k, v = attention.split_heads(z)
    bias = None if size is None else size.log()[:, None, None, :, 0]  # [B, 1, 1, N], broadcast over heads/queries
    if not return_attention:
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return attention.merge_heads(heads), k.mean(dim=1)
    scores = attention.scores(q, k)
    weights = (scores if bias is None else scores + bias).softmax(dim=-1)
    return attention.merge_heads(weights @ v), k.mean(dim=1), weights


class ToMeViT(nn.Module):
    """Wrap a trained ``ViT`` (weights shared, not copied) to merge ``r`` tokens per layer at inference.

    Only the token loop is ToMe's; pooling, final LN and head are the ViT's (``ViT.forward_head``), so ``config.pool``
    holds: "cls" takes the class token (never merged), "gap" the mean of the patch tokens weighted by their size.
    ``forward(x, return_attention=True)`` also returns each layer's attention [B, heads, N_l, N_l] (N_l tokens enter
    layer l); ``return_source=True`` also returns, per image, which original tokens each remaining token stands
    for: a 0/1 matrix [B, remaining tokens, N + 1].
    """

    def __init__(self, vit: ViT, r: int = 0, proportional: bool = True):
        super().__init__()
        self.vit, self.r, self.proportional = vit, r, proportional

    @torch.no_grad()
    def forward(self, x: torch.Tensor, return_attention: bool = False, return_source: bool = False):
        """Images -> logits [B, num_classes], then the attention maps and the source matrix if asked (in that
        order)."""
        z = self.vit.embedding(x)
        b, n, _ = z.shape
        size = None  # every token stands for itself until the first merge
        source = torch.eye(n, device=z.device).expand(b, n, n) if return_source else None
        attentions = [] if return_attention else None
        for block in self.vit.blocks():
            z, size, source = self.block(block, z, size, source, attentions)
        logits = self.vit.forward_head(z, size=size)
        extras = ([attentions] if return_attention else []) + ([source] if return_source else [])
        return (logits, *extras) if extras else logits

    def block(self, block: EncoderBlock, z: torch.Tensor, size: torch.Tensor | None, source: torch.Tensor | None,
              attentions: list[torch.Tensor] | None = None):
        """One encoder layer with merging between Eq. 2 and Eq. 3 (inference: no dropout, no drop path).
        ``size`` is None while no token has been merged (all sizes 1: plain attention, no bias); with a list
        ``attentions``, this layer's attention is appended to it."""
        out, keys, *weights = proportional_attention(block.attention, block.norm1(z),
                                                     size if self.proportional else None, attentions is not None)
        if attentions is not None:
            attentions += weights
        z = z + out  # Eq. 2
        r = min(self.r, (z.shape[1] - 1) // 2)  # never more than set A holds besides the class token
        if r > 0:
            plan = bipartite_soft_matching(keys, r)
            size = z.new_ones(z.shape[0], z.shape[1], 1) if size is None else size
            z, size = merge_weighted(z, size, plan)
            if source is not None:
                source = merge(source, plan, "amax")
        z = z + block.mlp(block.norm2(z))  # Eq. 3
        return z, size, source


def patch_groups(source: torch.Tensor) -> torch.Tensor:
    """For each image patch (class token column dropped), the index of the final token it was merged into:
    [B, N] from a source matrix [B, tokens, N + 1]."""
    return source[:, :, 1:].argmax(dim=1)
