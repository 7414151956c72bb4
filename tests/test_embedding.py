import pytest
import torch
import torch.nn.functional as F

from vit_replication.embedding import PatchEmbedding, ViTEmbedding


def test_patch_embedding_shape():
    embed = PatchEmbedding(image_size=32, patch_size=4, in_channels=3, hidden_dim=48)
    out = embed(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64, 48)
    assert embed.num_patches == 64 and embed.grid_size == 8


def test_conv_equals_unfold_plus_linear():
    """Eq. 1's x_p E: a Conv2d with kernel = stride = P is the same linear map applied to every flattened patch."""
    p, d = 4, 24
    embed = PatchEmbedding(image_size=16, patch_size=p, in_channels=3, hidden_dim=d)
    x = torch.randn(3, 3, 16, 16)
    patches = F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)  # [B, N, P^2 C], row-major patch order
    weight = embed.proj.weight.reshape(d, -1)  # E^T, flattened in the same (C, P, P) order as unfold
    reference = patches @ weight.T + embed.proj.bias
    torch.testing.assert_close(embed(x), reference, atol=1e-5, rtol=1e-5)


def test_vit_embedding_prepends_class_token_and_adds_positions():
    embed = ViTEmbedding(image_size=16, patch_size=4, in_channels=3, hidden_dim=8).eval()
    torch.nn.init.normal_(embed.class_token)
    x = torch.randn(2, 3, 16, 16)
    z0 = embed(x)
    assert z0.shape == (2, 17, 8)
    expected_cls = (embed.class_token + embed.position_embedding[:, :1]).expand(2, 1, 8)
    torch.testing.assert_close(z0[:, :1], expected_cls)
    torch.testing.assert_close(z0[:, 1:], embed.patch_embedding(x) + embed.position_embedding[:, 1:])


def test_embedding_dropout_only_in_training():
    embed = ViTEmbedding(image_size=16, patch_size=4, hidden_dim=8, dropout=0.5)
    x = torch.randn(2, 3, 16, 16)
    embed.eval()
    torch.testing.assert_close(embed(x), embed(x))
    embed.train()
    assert (embed(x) == 0).any()


def test_image_size_not_divisible_by_patch_size():
    with pytest.raises(ValueError, match="image_size 30 is not divisible by patch_size 4"):
        PatchEmbedding(image_size=30, patch_size=4)


def test_wrong_number_of_channels():
    embed = PatchEmbedding(image_size=16, patch_size=4, in_channels=3, hidden_dim=8)
    with pytest.raises(ValueError, match="expected 3 input channels, got 1"):
        embed(torch.randn(2, 1, 16, 16))


def test_wrong_image_size_and_rank():
    embed = PatchEmbedding(image_size=16, patch_size=4, in_channels=3, hidden_dim=8)
    with pytest.raises(ValueError, match="expected images of 16x16 pixels, got 32x32"):
        embed(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"expected a batch of images \[B, C, H, W\]"):
        embed(torch.randn(3, 16, 16))
