"""Token merging (ToMe, Bolya et al. 2022, arXiv 2210.09461): a trained ViT runs faster, without
retraining, by merging the r most similar tokens in every layer, between Eq. 2 and Eq. 3:

1. **Bipartite soft matching.** Split the tokens alternately into sets A and B; pair each A token
   with its most similar B token (cosine similarity of the keys, averaged over heads); the r most
   similar A tokens merge into their partners. The class token never merges.
2. **Weighted average.** A merged token is the mean of its parts weighted by their ``size``.
3. **Proportional attention.** A = softmax(q k^T / sqrt(D_h) + log s): a token of size s attracts
   exactly the attention its s unmerged copies would have.

After L layers N + 1 - L r tokens are left; ``r = 0`` gives the plain ViT's logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..model.attention import MultiHeadSelfAttention
from ..model.block import EncoderBlock
from ..model.vit import ViT


@dataclass
class MergePlan:
    """Which tokens of set A (even positions) merge into which tokens of set B (odd positions)."""

    unmerged: torch.Tensor  # [B, |A| - r, 1] positions in A that stay, in their original order
    source: torch.Tensor  # [B, r, 1] positions in A that merge away
    destination: torch.Tensor  # [B, r, 1] positions in B that receive them


def bipartite_soft_matching(metric: torch.Tensor, r: int) -> MergePlan:
    """The r most similar (A, B) pairs of ``metric`` [B, N, C] by cosine similarity."""
    a_count = (metric.shape[1] + 1) // 2
    if not 0 <= r <= a_count - 1:
        raise ValueError(f"cannot merge r={r} tokens: set A has {a_count} tokens "
                         "including the protected class token")
    metric = metric / metric.norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)  # [B, |A|, |B|]
    scores[:, 0, :] = -float("inf")  # the class token (position 0, in A) is never a source
    best, best_partner = scores.max(dim=-1)  # each A token's most similar B token
    order = best.argsort(dim=-1, descending=True)[..., None]
    unmerged = order[:, r:].sort(dim=1).values  # sorted: the class token stays first
    source = order[:, :r]
    return MergePlan(unmerged, source, best_partner[..., None].gather(1, source))


def merge(x: torch.Tensor, plan: MergePlan, reduce: str = "sum") -> torch.Tensor:
    """x [B, N, C] -> the unmerged A tokens, then the B tokens with their A sources reduced in."""
    a, b = x[:, ::2], x[:, 1::2]
    batch, _, channels = a.shape
    unmerged = a.gather(1, plan.unmerged.expand(batch, -1, channels))
    source = a.gather(1, plan.source.expand(batch, -1, channels))
    b = b.scatter_reduce(1, plan.destination.expand(batch, -1, channels), source, reduce=reduce)
    return torch.cat([unmerged, b], dim=1)


def merge_weighted(x: torch.Tensor, size: torch.Tensor, plan: MergePlan) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted mean of merged tokens; returns (tokens, their new sizes [B, N', 1])."""
    x = merge(x * size, plan, "sum")
    size = merge(size, plan, "sum")
    return x / size, size


def proportional_attention(
    attention: MultiHeadSelfAttention, z: torch.Tensor, size: torch.Tensor | None, return_attention: bool = False
) -> tuple[torch.Tensor, ...]:
    """MSA (Eqs. 5-8) with log(size) added to every key's score -> (output, keys averaged over heads
    [B, N, D_h], ToMe's metric[, A]). A is computed explicitly only when asked for."""
    q, k, v = attention.split_heads(z)
    bias = None if size is None else size.log()[:, None, None, :, 0]  # [B, 1, 1, N]
    if not return_attention:
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return attention.merge_heads(heads), k.mean(dim=1)
    scores = attention.scores(q, k)
    weights = (scores if bias is None else scores + bias).softmax(dim=-1)
    return attention.merge_heads(weights @ v), k.mean(dim=1), weights


class ToMeViT(nn.Module):
    """A trained ``ViT`` (weights shared) that merges ``r`` tokens per layer at inference. Pooling,
    final LN and head are the ViT's (``forward_head``), with the token sizes for "gap"."""

    def __init__(self, vit: ViT, r: int = 0, proportional: bool = True):
        super().__init__()
        self.vit, self.r, self.proportional = vit, r, proportional

    @torch.no_grad()
    def forward(self, x: torch.Tensor, return_attention: bool = False, return_source: bool = False):
        """Images -> logits, then if asked each layer's attention [B, heads, N_l, N_l] and the
        source matrix [B, tokens left, N + 1]: which original tokens each token stands for."""
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

    def block(self, block: EncoderBlock, z: torch.Tensor, size: torch.Tensor | None,
              source: torch.Tensor | None, attentions: list[torch.Tensor] | None = None):
        """One encoder layer, merging between Eq. 2 and Eq. 3 (no dropout, no drop path); appends
        its attention to ``attentions`` if given."""
        out, keys, *weights = proportional_attention(block.attention, block.norm1(z),
                                                     size if self.proportional else None, attentions is not None)
        if attentions is not None:
            attentions += weights
        z = z + out  # Eq. 2
        r = min(self.r, (z.shape[1] - 1) // 2)  # what set A holds besides the class token
        if r > 0:
            plan = bipartite_soft_matching(keys, r)
            size = z.new_ones(z.shape[0], z.shape[1], 1) if size is None else size
            z, size = merge_weighted(z, size, plan)
            if source is not None:
                source = merge(source, plan, "amax")
        z = z + block.mlp(block.norm2(z))  # Eq. 3
        return z, size, source


def patch_groups(source: torch.Tensor) -> torch.Tensor:
    """Source matrix [B, tokens, N + 1] -> [B, N]: the final token each patch was merged into."""
    return source[:, :, 1:].argmax(dim=1)
