import pytest
import torch

from vit_replication.model import ViT
from vit_replication.model.attention import MultiHeadSelfAttention
from vit_replication.variants.tome import (
    ToMeViT,
    bipartite_soft_matching,
    merge,
    merge_weighted,
    patch_groups,
    proportional_attention,
)


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_r_zero_gives_the_plain_vit_logits_and_attention(tiny_config, pool):
    vit = ViT(tiny_config, pool=pool).eval()
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(ToMeViT(vit, r=0)(x), vit(x), atol=1e-5, rtol=1e-5)
    logits, attentions = ToMeViT(vit, r=0)(x, return_attention=True)
    with torch.no_grad():
        _, expected = vit(x, return_attention=True)
    assert len(attentions) == tiny_config.num_layers
    for ours, theirs in zip(attentions, expected):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_gap_averages_the_patch_tokens_weighted_by_their_size(tiny_config):
    """Under GAP the pooled vector is the mean over the original patches: a token standing for s patches counts s
    times, the class token not at all. Checked on a hand-built merged sequence."""
    vit = ViT(tiny_config, pool="gap").eval()
    z = torch.randn(2, 4, tiny_config.hidden_dim)  # class token + 3 tokens of sizes 2, 1, 3
    size = torch.tensor([1.0, 2.0, 1.0, 3.0]).expand(2, 4)[..., None]
    expected = (2 * z[:, 1] + z[:, 2] + 3 * z[:, 3]) / 6
    torch.testing.assert_close(vit.pool(z, size), expected)
    torch.testing.assert_close(vit.forward_head(z, size=size), vit.head(vit.norm(expected)))


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_merged_model_pools_with_the_sizes_of_its_tokens(tiny_config, pool):
    """ToMe's logits are the ViT's head on its own merged tokens: the class token, or the size-weighted patch mean
    (equal to the plain mean of the patches each token stands for, recovered here from the source matrix)."""
    vit = ViT(tiny_config, pool=pool).eval()
    tome = ToMeViT(vit, r=3)
    x = torch.randn(2, 3, 16, 16)
    logits, attentions, source = tome(x, return_attention=True, return_source=True)
    assert [a.shape[-1] for a in attentions] == [17, 14]  # each layer merges 3 tokens after its attention
    assert attentions[1].shape == (2, 4, 14, 14)
    torch.testing.assert_close(attentions[1].sum(-1), torch.ones(2, 4, 14))
    size = source.sum(dim=-1, keepdim=True)  # patches (or class token) per remaining token
    assert torch.equal(size[:, 0, 0], torch.ones(2)) and size[:, 1:].sum(dim=(1, 2)).eq(16).all()
    z, sizes = _tome_tokens(tome, x)
    torch.testing.assert_close(sizes, size)
    pooled = z[:, 0] if pool == "cls" else (z[:, 1:] * size[:, 1:]).sum(1) / 16
    torch.testing.assert_close(logits, vit.head(vit.norm(pooled)), atol=1e-5, rtol=1e-5)


def _tome_tokens(tome: ToMeViT, x: torch.Tensor):
    """The merged tokens after the last layer and their sizes, by running ToMe's layers one by one."""
    with torch.no_grad():
        z, size = tome.vit.embedding(x), None
        for block in tome.vit.encoder:
            z, size, _ = tome.block(block, z, size, None)
    return z, size


def test_token_count_sizes_and_sources(tiny_config):
    vit = ViT(tiny_config).eval()
    logits, source = ToMeViT(vit, r=3)(torch.randn(2, 3, 16, 16), return_source=True)
    n = tiny_config.num_patches + 1
    assert logits.shape == (2, 10)
    assert source.shape == (2, n - 3 * tiny_config.num_layers, n)
    assert torch.equal(source.sum(dim=1), torch.ones(2, n))  # every original token lands in exactly one token
    assert source[:, 0, 0].eq(1).all() and source[:, 0].sum(-1).eq(1).all()  # class token first, alone
    groups = patch_groups(source)
    assert groups.shape == (2, n - 1) and groups.min() >= 1


def test_r_is_capped_by_what_set_a_holds(tiny_config):
    vit = ViT(tiny_config).eval()
    _, source = ToMeViT(vit, r=100)(torch.randn(1, 3, 16, 16), return_source=True)
    assert source.shape[1] == 5  # two layers, each merging the most it can, (N - 1) // 2: 17 -> 9 -> 5 tokens
    with pytest.raises(ValueError, match="cannot merge r=9"):
        bipartite_soft_matching(torch.randn(1, 17, 8), 9)


def test_matching_merges_the_duplicates_and_never_the_class_token():
    torch.manual_seed(1)
    tokens = torch.randn(1, 8, 16)
    tokens[0, 3] = tokens[0, 2]  # A position 1 (token 2) duplicates B position 1 (token 3)
    tokens[0, 7] = 2 * tokens[0, 6]  # same direction: cosine similarity 1
    tokens[0, 1] = tokens[0, 0]  # the class token has a twin, but is protected
    plan = bipartite_soft_matching(tokens, 2)
    assert sorted(plan.source.flatten().tolist()) == [1, 3]
    assert sorted(plan.destination.flatten().tolist()) == [1, 3]
    assert plan.unmerged[0, 0, 0] == 0


def test_weighted_merge_is_the_size_weighted_mean():
    x = torch.tensor([[[0.0], [1.0], [3.0], [5.0]]])  # A = tokens 0, 2; B = tokens 1, 3
    size = torch.tensor([[[1.0], [1.0], [2.0], [1.0]]])
    plan = bipartite_soft_matching(torch.tensor([[[1.0, 0], [0, 1], [1, 1], [1, 1]]]), 1)
    merged, new_size = merge_weighted(x, size, plan)
    torch.testing.assert_close(merged, torch.tensor([[[0.0], [1.0], [(3.0 * 2 + 5.0) / 3]]]))
    torch.testing.assert_close(new_size, torch.tensor([[[1.0], [1.0], [3.0]]]))
    assert merge(x, plan, "amax")[0, -1, 0] == 5.0


def test_proportional_attention_equals_attention_over_the_unmerged_copies():
    """A token of size 2 gets the attention that two identical copies of it would get."""
    attention = MultiHeadSelfAttention(16, 2).eval()
    z = torch.randn(1, 3, 16)
    copies = torch.cat([z, z[:, 2:]], dim=1)  # token 2 twice
    out_copies, _ = proportional_attention(attention, copies, None)
    out_merged, _ = proportional_attention(attention, z, torch.tensor([[[1.0], [1.0], [2.0]]]))
    torch.testing.assert_close(out_merged, out_copies[:, :3], atol=1e-5, rtol=1e-5)
    unweighted, _ = proportional_attention(attention, z, None)
    assert not torch.allclose(unweighted[:, :2], out_copies[:, :2], atol=1e-4)


def test_merged_patch_image_paints_each_group_with_its_mean_colour():
    from vit_replication.analysis.visualize import merged_patch_image

    image = torch.arange(3 * 4 * 4, dtype=torch.float32).reshape(3, 4, 4)
    alone = merged_patch_image(image, torch.arange(4), patch_size=2)  # every patch its own group: its mean colour
    patch = image[:, 2:, :2]  # bottom-left patch
    torch.testing.assert_close(alone[:, 2:, :2], patch.mean(dim=(1, 2), keepdim=True).expand(3, 2, 2))
    together = merged_patch_image(image, torch.tensor([5, 5, 7, 7]), patch_size=2)  # top row, bottom row
    torch.testing.assert_close(together[:, :2], image[:, :2].mean(dim=(1, 2), keepdim=True).expand(3, 2, 4))
    torch.testing.assert_close(together[:, 2:], image[:, 2:].mean(dim=(1, 2), keepdim=True).expand(3, 2, 4))
