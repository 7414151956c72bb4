import pytest
import torch
import torch.nn.functional as F

from vit_replication.model.embedding import PatchEmbedding, ViTEmbedding


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


def test_resampled_position_embedding_matches_torch_bicubic_on_the_grid():
    """Sec. 3.2: E_pos is resized as an image of the patch grid; the class token's row stays as it is."""
    from vit_replication.model.embedding import resample_position_embedding

    pos = torch.randn(1, 1 + 8 * 8, 6)
    out = resample_position_embedding(pos, 4)
    assert out.shape == (1, 1 + 16, 6) and torch.equal(out[:, 0], pos[:, 0])
    grid = pos[0, 1:].reshape(8, 8, 6).permute(2, 0, 1)[None]  # independent reshape: [1, D, 8, 8]
    expected = torch.nn.functional.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True)
    torch.testing.assert_close(out[0, 1:], expected[0].permute(1, 2, 0).reshape(16, 6))
    assert resample_position_embedding(pos, 8) is pos


def test_model_at_another_resolution_equals_a_model_built_for_it(tiny_config):
    """A dynamic-size ViT fed 8x8 images computes what a ViT built for 8x8 computes with the interpolated E_pos."""
    from dataclasses import replace

    from vit_replication.model import ViT
    from vit_replication.model.embedding import resample_position_embedding

    torch.manual_seed(0)
    dynamic = ViT(tiny_config, dynamic_image_size=True).eval()  # built for 16x16: a 4x4 grid
    small = ViT(replace(tiny_config, image_size=8)).eval()  # 2x2 grid
    state = dict(dynamic.state_dict())
    state["embedding.position_embedding"] = resample_position_embedding(state["embedding.position_embedding"], 2)
    small.load_state_dict(state)
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(dynamic(x), small(x))
    with pytest.raises(ValueError, match="expected images of 16x16 pixels, got 8x8"):
        ViT(tiny_config)(x)  # without dynamic_image_size the size is checked as before
    with pytest.raises(ValueError, match="square images whose side is divisible by the patch size 4, got 10x10"):
        dynamic(torch.randn(1, 3, 10, 10))


def test_patch_dropout_keeps_the_class_token_and_a_random_subset_while_training_only():
    from vit_replication.model.embedding import PatchDropout

    drop = PatchDropout(0.5)
    z = torch.arange(2 * 9 * 1, dtype=torch.float32).reshape(2, 9, 1)  # class token + 8 patches, values = ids
    out = drop.train()(z)
    assert out.shape == (2, 1 + 4, 1) and torch.equal(out[:, 0], z[:, 0])
    for b in range(2):
        kept = out[b, 1:, 0]
        assert len(set(kept.tolist())) == 4 and set(kept.tolist()) <= set(z[b, 1:, 0].tolist())
    assert torch.equal(drop.eval()(z), z)  # off in eval
    with pytest.raises(ValueError, match=r"patch dropout must be in \[0, 1\), got 1.0"):
        PatchDropout(1.0)


def test_gap_pooling_averages_the_patch_tokens(tiny_config):
    from dataclasses import replace

    from vit_replication.model import ViT

    torch.manual_seed(0)
    model = ViT(replace(tiny_config, pool="gap")).eval()
    x = torch.randn(2, 3, 16, 16)
    z = model.embedding(x)
    for block in model.encoder:
        z = block(z)
    expected = model.head(model.norm(z[:, 1:].mean(dim=1)))  # paper App. D.3: GAP instead of the class token
    torch.testing.assert_close(model(x), expected)
