"""The head's pooling rule (Eq. 4, App. D.3) on any leading dims, as the attention maps use it; a merged token of
size s counts as s copies of itself."""

import pytest
import torch

from vit_replication.model.pooling import check_pool, pool_tokens


def test_pooling_any_leading_dims_matches_a_loop_over_the_rows():
    z = torch.randn(2, 3, 5, 4)  # e.g. [B, heads, N+1, N+1-like last dim]
    for pool in ("cls", "gap"):
        out = pool_tokens(z, pool)
        assert out.shape == (2, 3, 4)
        for b in range(2):
            for h in range(3):
                rows = [z[b, h, i] for i in range(1, 5)]
                expected = z[b, h, 0] if pool == "cls" else sum(rows) / len(rows)
                torch.testing.assert_close(out[b, h], expected)


def test_gap_weighted_by_size_is_the_mean_over_copies():
    z, size = torch.randn(1, 4, 3), torch.tensor([[1.0, 2.0, 1.0, 3.0]]).unsqueeze(-1)
    copies = torch.repeat_interleave(z[0, 1:], size[0, 1:, 0].long(), dim=0)  # 6 original patches
    torch.testing.assert_close(pool_tokens(z, "gap", size)[0], copies.mean(dim=0))
    torch.testing.assert_close(pool_tokens(z, "cls", size), z[:, 0])


def test_unknown_pool_names_its_owner():
    with pytest.raises(ValueError, match="ViTConfig.pool must be one of cls, gap, got 'max'"):
        check_pool("max", "ViTConfig.pool")
