import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vit_replication.model.attention import MultiHeadSelfAttention


def make_pair(dim=32, heads=4):
    ours = MultiHeadSelfAttention(dim, heads, use_sdpa=False).eval()
    reference = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        reference.in_proj_weight.copy_(ours.qkv.weight)
        reference.in_proj_bias.copy_(ours.qkv.bias)
        reference.out_proj.weight.copy_(ours.proj.weight)
        reference.out_proj.bias.copy_(ours.proj.bias)
    return ours, reference


def test_from_scratch_equals_nn_multihead_attention():
    ours, reference = make_pair()
    z = torch.randn(3, 17, 32)
    out, weights = ours(z, return_attention=True)
    ref_out, ref_weights = reference(z, z, z, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-5)


def test_sdpa_path_equals_explicit_path():
    attention = MultiHeadSelfAttention(32, 4).eval()
    z = torch.randn(2, 10, 32)
    fused = attention(z)
    attention.use_sdpa = False
    torch.testing.assert_close(fused, attention(z), atol=1e-5, rtol=1e-5)


def test_heads_equal_scaled_dot_product_attention_per_head():
    """Eqs. 5-7 for each head separately, against PyTorch's reference SDPA."""
    attention = MultiHeadSelfAttention(24, 3, use_sdpa=False).eval()
    z = torch.randn(2, 7, 24)
    q, k, v = attention.split_heads(z)
    weights = attention.attention_weights(q, k)
    for h in range(3):
        manual = torch.softmax(q[:, h] @ k[:, h].transpose(-1, -2) / math.sqrt(8), dim=-1)
        torch.testing.assert_close(weights[:, h], manual)
        torch.testing.assert_close(weights[:, h] @ v[:, h], F.scaled_dot_product_attention(q[:, h], k[:, h], v[:, h]),
                                   atol=1e-6, rtol=1e-5)
    assert q.shape == (2, 3, 7, 8)


def test_attention_rows_are_distributions():
    attention = MultiHeadSelfAttention(16, 2)
    _, weights = attention(torch.randn(4, 9, 16), return_attention=True)
    assert weights.shape == (4, 2, 9, 9)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 2, 9))


def test_return_attention_with_sdpa_enabled_still_returns_weights():
    attention = MultiHeadSelfAttention(16, 2, use_sdpa=True).eval()
    z = torch.randn(1, 5, 16)
    out, weights = attention(z, return_attention=True)
    torch.testing.assert_close(out, attention(z), atol=1e-5, rtol=1e-5)
    assert weights.shape == (1, 2, 5, 5)


def test_attention_dropout_active_only_in_training():
    attention = MultiHeadSelfAttention(16, 2, attn_dropout=0.5, use_sdpa=False)
    z = torch.randn(2, 6, 16)
    attention.eval()
    torch.testing.assert_close(attention(z), attention(z))
    attention.train()
    assert not torch.allclose(attention(z), attention(z))


def test_bad_head_count_and_input():
    with pytest.raises(ValueError, match="hidden_dim 30 is not divisible by num_heads 4"):
        MultiHeadSelfAttention(30, 4)
    with pytest.raises(ValueError, match=r"expected tokens \[B, N, 16\], got shape \(2, 5, 8\)"):
        MultiHeadSelfAttention(16, 2)(torch.randn(2, 5, 8))
