import pytest
import torch

from vit_replication.analysis.attention_maps import (
    attention_rollout,
    cls_attention,
    normalise_maps,
    rollout_map,
    upsample_maps,
)
from vit_replication.model import ViT


def random_attention(b=2, heads=3, n=17):
    return torch.randn(b, heads, n, n).softmax(-1)


def test_rollout_rows_are_distributions():
    rollout = attention_rollout([random_attention() for _ in range(4)])
    assert rollout.shape == (2, 17, 17)
    assert (rollout >= 0).all()
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 17))


def test_rollout_of_identity_attention_is_identity():
    eye = torch.eye(17).expand(2, 3, 17, 17)
    torch.testing.assert_close(attention_rollout([eye, eye, eye]), torch.eye(17).expand(2, 17, 17))


def test_rollout_of_one_layer_mixes_in_the_residual():
    a = random_attention()
    torch.testing.assert_close(attention_rollout([a]), 0.5 * a.mean(1) + 0.5 * torch.eye(17))


def test_rollout_multiplies_layers_in_order():
    a, b = random_attention(), random_attention()
    mix = lambda x: 0.5 * x.mean(1) + 0.5 * torch.eye(17)  # noqa: E731
    torch.testing.assert_close(attention_rollout([a, b]), mix(b) @ mix(a))


def test_cls_attention_picks_class_token_row():
    a = random_attention(n=10)
    maps = cls_attention(a)
    assert maps.shape == (2, 3, 3, 3)
    torch.testing.assert_close(maps[1, 2].flatten(), a[1, 2, 0, 1:])
    with pytest.raises(ValueError, match="11 tokens are not a class token plus a square grid"):
        cls_attention(random_attention(n=11))


def test_gap_maps_average_the_patch_tokens_rows():
    a = random_attention(n=10)
    by_hand = torch.stack([a[:, :, i, 1:] for i in range(1, 10)]).mean(0)  # each patch query's row, averaged
    torch.testing.assert_close(cls_attention(a, pool="gap").flatten(2), by_hand)
    layers = [random_attention(n=10) for _ in range(3)]
    rollout = attention_rollout(layers)
    expected = normalise_maps(sum(rollout[:, i, 1:] for i in range(1, 10)).reshape(2, 3, 3) / 9)
    torch.testing.assert_close(rollout_map(layers, pool="gap"), expected)
    assert not torch.allclose(rollout_map(layers, pool="gap"), rollout_map(layers))
    with pytest.raises(ValueError, match="pool must be one of cls, gap, got 'max'"):
        rollout_map(layers, pool="max")


def test_rollout_map_of_model_in_unit_range(tiny_config):
    model = ViT(tiny_config).eval()
    _, attentions = model(torch.randn(3, 3, 16, 16), return_attention=True)
    maps = rollout_map(attentions)
    assert maps.shape == (3, 4, 4)
    assert maps.amin() == 0 and torch.allclose(maps.amax(dim=(1, 2)), torch.ones(3))
    assert upsample_maps(maps, 16).shape == (3, 16, 16)


def test_rollout_bad_input():
    with pytest.raises(ValueError, match="at least one layer"):
        attention_rollout([])
    with pytest.raises(ValueError, match="head_fusion must be one of mean, max, min"):
        attention_rollout([random_attention()], head_fusion="median")


def test_mean_attention_distance_known_cases():
    from vit_replication.analysis.attention_maps import mean_attention_distance

    n = 1 + 9  # class token + 3x3 patches of 4 pixels
    identity = torch.eye(n).expand(2, 3, n, n)
    assert torch.equal(mean_attention_distance([identity], patch_size=4), torch.zeros(1, 3))
    to_corner = torch.zeros(1, 1, n, n)
    to_corner[..., 1] = 1.0  # every patch looks only at patch (0, 0)
    centres = torch.tensor([[r, c] for r in range(3) for c in range(3)], dtype=torch.float32) * 4
    expected = centres.norm(dim=1).mean()
    torch.testing.assert_close(mean_attention_distance([to_corner], 4), expected.reshape(1, 1))


def test_uniform_attention_distance_is_what_uniform_attention_measures():
    from vit_replication.analysis.attention_maps import mean_attention_distance, uniform_attention_distance

    uniform = torch.full((2, 3, 1 + 16, 1 + 16), 1 / 17)  # every token attends to every token equally
    measured = mean_attention_distance([uniform], patch_size=4)
    torch.testing.assert_close(measured, torch.full((1, 3), uniform_attention_distance(4, 4)))
    assert uniform_attention_distance(1, 4) == 0.0 and uniform_attention_distance(2, 1) == pytest.approx(
        (0 + 1 + 1 + 2**0.5) / 4)


def _variants(config):
    from vit_replication.variants.realformer import RealFormerViT
    from vit_replication.variants.tome import ToMeViT
    from vit_replication.variants.width_varying import WidthVaryingConfig, WidthVaryingViT

    wide = WidthVaryingConfig(image_size=16, patch_size=4, stage_dims=(32, 64), stage_depths=(1, 1), head_dim=8,
                              pool=config.pool)
    return {"ViT": ViT(config), "RealFormer": RealFormerViT(config), "width-varying": WidthVaryingViT(wide),
            "ToMe r=0": ToMeViT(ViT(config), r=0)}


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_every_variant_returns_one_attention_map_per_layer(tiny_config, pool):
    """forward(x, return_attention=True) -> (logits, L maps [B, heads, N+1, N+1] whose rows are distributions), the
    logits those of forward(x), for the ViT and every variant."""
    from dataclasses import replace

    x = torch.randn(3, 3, 16, 16)
    for name, model in _variants(replace(tiny_config, pool=pool)).items():
        model.eval()
        logits, attentions = model(x, return_attention=True)
        heads = [4, 8] if name == "width-varying" else [4, 4]
        assert [a.shape for a in attentions] == [(3, h, 17, 17) for h in heads], name
        torch.testing.assert_close(attentions[-1].sum(-1), torch.ones(3, heads[-1], 17))
        torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)
        assert rollout_map(attentions).shape == (3, 4, 4)


def test_position_similarity_is_cosine_and_finds_the_least_similar_patch():
    from vit_replication.analysis.attention_maps import least_similar_positions, position_similarity

    # 4 patches on a line: embeddings along a half circle, so patch 0 is least like patch 3 (opposite directions)
    angles = torch.tensor([0.0, 1.0, 2.0, 3.0]) * torch.pi / 3
    embedding = torch.stack([angles.cos(), angles.sin()], dim=-1) * torch.tensor([[1.0], [2.0], [0.5], [3.0]])
    similarity = position_similarity(embedding)
    expected = torch.nn.functional.cosine_similarity(embedding[:, None], embedding[None], dim=-1)
    torch.testing.assert_close(similarity, expected)
    least = least_similar_positions(embedding, [0, 1])
    assert least[0][0] == 3 and abs(least[0][1] - (-1.0)) < 1e-6  # pi apart: cosine -1
    assert least[1][0] == 3 and abs(least[1][1] - (-0.5)) < 1e-6  # 1 is 2 pi/3 from 3, pi/3 from 0 and 2
