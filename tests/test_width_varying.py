import pytest
import torch

from vit_replication.model import ViT, count_parameters, expected_num_parameters
from vit_replication.variants.width_varying import WidthVaryingConfig, WidthVaryingViT


@pytest.mark.parametrize("pool", ["cls", "gap"])
def test_one_stage_is_the_plain_vit(tiny_config, pool):
    """With a single stage the width-varying ViT computes exactly the tower ViT (same weights, same logits, same
    attention maps), under either pooling."""
    plain = ViT(tiny_config, pool=pool).eval()
    config = WidthVaryingConfig(image_size=16, patch_size=4, num_classes=10, stage_dims=(32,), stage_depths=(2,),
                                head_dim=8, mlp_ratio=2.0, pool=pool)
    varying = WidthVaryingViT(config).eval()
    state = {k.replace("encoder.", "stages.0."): v for k, v in plain.state_dict().items()}
    varying.load_state_dict(state)
    x = torch.randn(3, 3, 16, 16)
    torch.testing.assert_close(varying(x), plain(x))
    (_, attentions), (_, expected) = varying(x, return_attention=True), plain(x, return_attention=True)
    assert len(attentions) == 2 and all(torch.allclose(a, b) for a, b in zip(attentions, expected))
    assert count_parameters(varying) == expected_num_parameters(tiny_config)


def test_runtime_settings_reach_every_stage():
    model = WidthVaryingViT(WidthVaryingConfig(stage_dims=(32, 64), stage_depths=(2, 1), head_dim=16), drop_path=0.2,
                            attention="explicit")
    assert [block.drop_path.p for block in model.blocks()] == [0.0, 0.1, 0.2]
    assert not any(block.attention.use_sdpa for block in model.blocks())
    model.configure(drop_path=0.0, patch_dropout=0.5)
    assert [block.drop_path.p for block in model.blocks()] == [0.0] * 3 and model.embedding.patch_dropout.p == 0.5


def test_stages_widths_heads_and_parameter_count():
    config = WidthVaryingConfig(image_size=16, patch_size=4, stage_dims=(32, 64), stage_depths=(1, 2), head_dim=16)
    model = WidthVaryingViT(config)
    assert [len(stage) for stage in model.stages] == [1, 2]
    assert [stage[0].attention.num_heads for stage in model.stages] == [2, 4]
    assert model.projections[0].weight.shape == (64, 32)
    logits, attentions = model(torch.randn(2, 3, 16, 16), return_attention=True)
    assert logits.shape == (2, 10) and [a.shape[1] for a in attentions] == [2, 4, 4]
    # embedding at 32 + 1 layer of 32 + projection 32->64 + 2 layers of 64 + final LN and head at 64
    layer = lambda d: 4 * d + 3 * d * d + 3 * d + d * d + d + 2 * d * 2 * d + 2 * d + d  # noqa: E731
    embedding = 4 * 4 * 3 * 32 + 32 + 32 + 17 * 32
    expected = embedding + layer(32) + 32 * 64 + 64 + 2 * layer(64) + 2 * 64 + 64 * 10 + 10
    assert count_parameters(model) == expected


def test_bad_configs_give_clear_errors():
    with pytest.raises(ValueError, match="same, non-zero length"):
        WidthVaryingConfig(stage_dims=(32, 64), stage_depths=(2,))
    with pytest.raises(ValueError, match="not divisible by head_dim"):
        WidthVaryingConfig(stage_dims=(48,), stage_depths=(2,), head_dim=32)
