import math

import pytest
import torch
import torch.nn.functional as F

from vit_replication.errors import UserError
from vit_replication.model import ViT, count_parameters
from vit_replication.variants.realformer import RealFormerViT, ResidualAttention


def test_residual_attention_equals_sdpa_with_previous_scores_as_additive_mask():
    """softmax(q k^T / sqrt(d) + S_prev) v is SDPA with S_prev passed as a float attention mask."""
    attention = ResidualAttention(32, 4).eval()
    z, prev = torch.randn(2, 9, 32), torch.randn(2, 4, 9, 9)
    out, scores = attention(z, prev)
    q, k, v = attention.split_heads(z)
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=prev)
    expected = attention.proj(heads.transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores, q @ k.transpose(-2, -1) / math.sqrt(8) + prev)


def test_first_layer_without_previous_scores_is_plain_attention():
    attention = ResidualAttention(32, 4).eval()
    z = torch.randn(2, 9, 32)
    out, _, weights = attention(z, None, return_attention=True)
    plain_out, plain_weights = super(ResidualAttention, attention).forward(z, return_attention=True)
    torch.testing.assert_close(out, plain_out)
    torch.testing.assert_close(weights, plain_weights)


def test_same_seed_same_weights_and_parameter_count_as_plain_vit(tiny_config):
    torch.manual_seed(3)
    plain = ViT(tiny_config)
    torch.manual_seed(3)
    real = RealFormerViT(tiny_config)
    assert count_parameters(real) == count_parameters(plain)
    for (name, a), (other, b) in zip(plain.state_dict().items(), real.state_dict().items()):
        assert name == other
        torch.testing.assert_close(a, b)


def test_scores_accumulate_across_layers(tiny_config):
    """Layer l's scores are the sum of every layer's own q k^T / sqrt(d) up to l; so outputs differ from plain ViT."""
    model = RealFormerViT(tiny_config).eval()
    x = torch.randn(2, 3, 16, 16)
    z = model.embedding(x)
    scores, own_sum = None, 0
    for block in model.encoder:
        q, k, _ = block.attention.split_heads(block.norm1(z))
        own_sum = own_sum + q @ k.transpose(-2, -1) / math.sqrt(block.attention.head_dim)
        z, scores = block(z, scores)
        torch.testing.assert_close(scores, own_sum, atol=1e-5, rtol=1e-5)
    plain = ViT(tiny_config).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(x), model(x), atol=1e-4)


def test_forward_shapes_attention_and_training_step(tiny_config):
    model = RealFormerViT(tiny_config)
    logits, attentions = model(torch.randn(2, 3, 16, 16), return_attention=True)
    assert logits.shape == (2, 10) and len(attentions) == tiny_config.num_layers
    assert attentions[0].shape == (2, 4, 17, 17)
    torch.testing.assert_close(attentions[-1].sum(-1), torch.ones(2, 4, 17))
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bad_inputs_give_clear_errors(tiny_config):
    attention = ResidualAttention(32, 4)
    with pytest.raises(ValueError, match="prev_scores has shape"):
        attention(torch.randn(2, 9, 32), torch.randn(2, 4, 8, 8))
    with pytest.raises(UserError, match="RealFormerViT needs attention='explicit'"):
        RealFormerViT(tiny_config).configure(attention="sdpa")
    with pytest.raises(UserError, match="RealFormerViT needs attention='explicit'"):
        RealFormerViT(tiny_config, attention="sdpa")


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_logits_are_the_shared_head_on_the_pooled_last_layer_tokens(tiny_config, pool):
    """RealFormer changes only the token loop: logits = head(LN(pool(z_L))) with z_L from its own layers, run here by
    hand with the scores passed along."""
    model = RealFormerViT(tiny_config, pool=pool, drop_path=0.1).eval()
    x = torch.randn(3, 3, 16, 16)
    z, scores = model.embedding(x), None
    for block in model.encoder:
        z, scores = block(z, scores)
    torch.testing.assert_close(model.forward_features(x), z)
    pooled = z[:, 0] if pool == "cls" else z[:, 1:].mean(dim=1)
    y = F.layer_norm(pooled, (tiny_config.hidden_dim,), model.norm.weight, model.norm.bias, 1e-6)
    logits, attentions = model(x, return_attention=True)
    torch.testing.assert_close(logits, y @ model.head.weight.T + model.head.bias)
    assert len(attentions) == tiny_config.num_layers and all(a.shape == (3, 4, 17, 17) for a in attentions)
