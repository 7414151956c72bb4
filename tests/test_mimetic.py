import math

import pytest
import torch

from vit_replication.model import create_vit
from vit_replication.model.attention import MultiHeadSelfAttention
from vit_replication.training.mimetic import (
    QK,
    VO,
    initialise,
    mimetic_attention_,
    mimetic_init_,
    ortho_like,
    sincos_position_embedding,
)


@pytest.mark.parametrize("sign", [1, -1])
def test_ortho_like_factors_multiply_to_noise_plus_a_signed_identity(sign):
    torch.manual_seed(0)
    dim, alpha, beta = 48, 0.7, 0.5
    left, right = ortho_like(dim, alpha, beta, sign)
    noise = left @ right - sign * beta * torch.eye(dim)
    bound = alpha * math.sqrt(3 / dim)  # alpha Z with Z uniform on [-sqrt(3/dim), sqrt(3/dim)]
    assert noise.abs().max() <= bound + 1e-5
    assert noise.std().item() == pytest.approx(alpha / math.sqrt(dim), rel=0.1)  # variance alpha^2 / dim
    torch.testing.assert_close(left.T @ left, right @ right.T, atol=1e-4, rtol=1e-4)  # the SVD split evenly


@torch.no_grad()
def test_mimetic_attention_sets_each_heads_bilinear_form_and_a_damped_negative_identity():
    torch.manual_seed(0)
    attention = MultiHeadSelfAttention(hidden_dim=64, num_heads=4)
    mimetic_attention_(attention)
    dim, head_dim = 64, 16
    weight = attention.qkv.weight
    for h in range(4):
        w_q, w_k = weight[h * head_dim:(h + 1) * head_dim], weight[dim + h * head_dim:dim + (h + 1) * head_dim]
        form = w_q.T @ w_k  # q k^T = z (W_q^T W_k) z^T
        assert torch.linalg.matrix_rank(form) == head_dim
        diagonal = form.diagonal().clone()
        assert diagonal.sum() > QK[1] * head_dim  # the top D_h singular values of alpha_1 Z + beta_1 I exceed beta_1
        assert diagonal.mean() > 3 * (form - torch.diag(diagonal)).abs().mean()  # mostly the identity
    value_out = weight[2 * dim:].T @ attention.proj.weight.T  # out = z W_v^T U_msa^T
    alpha, beta = VO
    assert (value_out + beta * torch.eye(dim)).abs().max() <= alpha * math.sqrt(3 / dim) + 1e-5
    assert not attention.qkv.bias.any() and not attention.proj.bias.any()


def test_mimetic_heads_attend_to_the_token_itself_at_initialisation():
    """The point of the initialisation: with W_q^T W_k ~ I, a token's largest score is its own (the default
    initialisation attends almost uniformly)."""
    torch.manual_seed(0)
    z = torch.nn.functional.layer_norm(torch.randn(2, 17, 64), (64,))
    attention = MultiHeadSelfAttention(hidden_dim=64, num_heads=4)
    mimetic_attention_(attention)
    weights = attention(z, return_attention=True)[1]  # [B, heads, N, N]
    own = weights.argmax(-1) == torch.arange(17)
    assert own.float().mean() > 0.95
    assert weights.diagonal(dim1=-2, dim2=-1).mean() > 10 / 17  # far above uniform attention's 1/17


def test_sincos_position_embedding_against_its_formula_and_neighbours_are_alike():
    grid, dim = 8, 32
    embedding = sincos_position_embedding(grid, dim)
    assert embedding.shape == (grid * grid, dim)
    row, col, i = 2, 5, 3  # patch (2, 5) in row-major order; frequency i of 8
    omega = 10000.0 ** (-i / 7)
    patch = embedding[row * grid + col]
    expected = [math.sin(col * omega), math.cos(col * omega), math.sin(row * omega), math.cos(row * omega)]
    torch.testing.assert_close(patch[[i, 8 + i, 16 + i, 24 + i]], torch.tensor(expected))
    similarity = torch.nn.functional.cosine_similarity(embedding[:, None], embedding[None], dim=-1)
    first = similarity[0].reshape(grid, grid)  # patch (0, 0) against every patch
    for line in (first[0], first[:, 0]):  # along its row and its column: alike up to 3 patches away, then flat
        assert line[0] > line[1] > line[2] > line[3] and line[1] > line[2:].max()
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_embedding(4, 30)


def test_mimetic_init_changes_only_attention_and_positions_and_keeps_a_plain_vit():
    torch.manual_seed(0)
    model = create_vit("vit_cifar_tiny")
    before = {name: value.clone() for name, value in model.state_dict().items()}
    mimetic_init_(model)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(after[k].shape == before[k].shape for k in before)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"embedding.position_embedding"} | {
        f"encoder.{i}.attention.{layer}.weight" for i in range(4) for layer in ("qkv", "proj")}
    position, initial = after["embedding.position_embedding"][0], before["embedding.position_embedding"][0]
    torch.testing.assert_close(position[0], initial[0])  # the class token's row
    torch.testing.assert_close(position[1:], sincos_position_embedding(8, 64))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_initialise_keeps_the_models_own_weights_or_applies_mimetic():
    torch.manual_seed(0)
    model = create_vit("vit_cifar_tiny")
    before = {name: value.clone() for name, value in model.state_dict().items()}
    assert initialise(model, "timm") is model
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())
    initialise(model, "mimetic")
    qkv = "encoder.0.attention.qkv.weight"
    assert not torch.equal(model.state_dict()[qkv], before[qkv])
