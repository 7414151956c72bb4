import pytest
import torch
import torchvision

from vit_replication.download import DownloadError
from vit_replication.model import (
    CONFIGS,
    ViT,
    ViTConfig,
    count_parameters,
    create_vit,
    expected_num_parameters,
    get_config,
)
from vit_replication.weights.convert import convert_torchvision_state_dict, vit_from_torchvision


def test_vit_b_16_parameter_count_matches_paper_and_torchvision():
    with torch.device("meta"):
        ours = create_vit("vit_b_16")
        reference = torchvision.models.vit_b_16()
    assert count_parameters(ours) == 86_567_656
    assert count_parameters(reference) == 86_567_656


@pytest.mark.parametrize("name", list(CONFIGS))
def test_formula_matches_built_model(name):
    with torch.device("meta"):
        model = create_vit(name)
    assert count_parameters(model) == expected_num_parameters(model.config)


@pytest.mark.parametrize("name,builder", [("vit_b_32", "vit_b_32"), ("vit_l_16", "vit_l_16"), ("vit_h_14", "vit_h_14")])
def test_configs_match_torchvision_sizes(name, builder):
    with torch.device("meta"):
        assert count_parameters(create_vit(name)) == count_parameters(getattr(torchvision.models, builder)())


def test_logits_match_torchvision_vit_b_16_after_conversion():
    reference = torchvision.models.vit_b_16().eval()  # random weights: no download
    with torch.no_grad():  # make the zero-initialised head non-trivial
        torch.nn.init.normal_(reference.heads.head.weight, std=0.02)
        torch.nn.init.normal_(reference.class_token, std=0.02)
    ours = vit_from_torchvision(reference).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=0)
        ours.configure(attention="explicit")
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=0)


def test_small_torchvision_model_converts_with_its_config():
    reference = torchvision.models.VisionTransformer(
        image_size=32, patch_size=4, num_layers=3, num_heads=4, hidden_dim=64, mlp_dim=96, num_classes=7
    ).eval()
    torch.nn.init.normal_(reference.heads.head.weight)
    ours = vit_from_torchvision(reference).eval()
    assert ours.config.num_layers == 3 and ours.config.num_classes == 7
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=0)


def test_conversion_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unexpected key in torchvision ViT state dict: encoder.extra"):
        convert_torchvision_state_dict({"encoder.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="representation_size"):
        convert_torchvision_state_dict({"heads.pre_logits.weight": torch.zeros(1)})


def test_forward_shapes_and_attention(tiny_config):
    model = ViT(tiny_config).eval()
    x = torch.randn(3, 3, 16, 16)
    logits, attentions = model(x, return_attention=True)
    assert logits.shape == (3, 10)
    assert len(attentions) == tiny_config.num_layers
    assert all(a.shape == (3, 4, 17, 17) for a in attentions)
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)


def test_eq4_is_layer_norm_of_class_token_after_last_block(tiny_config):
    """Eq. 4: y = LN(z_L^0), computed here by running Eqs. 1-3 by hand."""
    model = ViT(tiny_config).eval()
    x = torch.randn(5, 3, 16, 16)
    z = model.embedding(x)
    for block in model.encoder:
        z = block(z)
    y = torch.nn.functional.layer_norm(z[:, 0], (tiny_config.hidden_dim,), model.norm.weight, model.norm.bias, 1e-6)
    tokens = model.forward_features(x)
    torch.testing.assert_close(tokens, z)  # all N + 1 tokens of the last layer, before the final LN
    torch.testing.assert_close(model.forward_head(tokens, pre_logits=True), y)
    torch.testing.assert_close(model(x), y @ model.head.weight.T + model.head.bias)


def test_gap_head_is_layer_norm_of_the_mean_patch_token(tiny_config):
    """pool="gap": y = LN(mean of z_L^1..N), not the mean of the normalised tokens (they differ)."""
    model = ViT(tiny_config, pool="gap").eval()
    x = torch.randn(4, 3, 16, 16)
    tokens = model.forward_features(x)
    norm = lambda t: torch.nn.functional.layer_norm(t, (32,), model.norm.weight, model.norm.bias, 1e-6)  # noqa: E731
    y = norm(tokens[:, 1:].mean(dim=1))
    torch.testing.assert_close(model(x), y @ model.head.weight.T + model.head.bias)
    assert not torch.allclose(y, norm(tokens[:, 1:]).mean(dim=1), atol=1e-3)


def test_every_parameter_gets_a_gradient(tiny_config):
    model = ViT(tiny_config, drop_path=0.1, dropout=0.1)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_config_and_overrides():
    with pytest.raises(ValueError, match="unknown ViT config 'vit_z_16'"):
        create_vit("vit_z_16")
    assert get_config("vit_b_16", num_classes=10).num_classes == 10
    assert get_config("vit_cifar").num_patches == 64


def test_pretrained_weights_unavailable_says_so(monkeypatch):
    from vit_replication.weights.convert import load_torchvision_pretrained

    def offline(weights=None):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models, "vit_b_16", offline)
    with pytest.raises(DownloadError, match=r"torchvision's pretrained vit_b_16 \(IMAGENET1K_V1\) could not be "
                                            r"downloaded \(OSError: .*\); run once with internet access"):
        load_torchvision_pretrained("vit_b_16", "IMAGENET1K_V1")


def test_channels_last_model_computes_the_same_logits(tiny_config):
    model = ViT(tiny_config).eval()
    channels_last = ViT(tiny_config).to(memory_format=torch.channels_last).eval()
    channels_last.load_state_dict(model.state_dict())
    assert channels_last.embedding.patch_embedding.proj.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(channels_last(x), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(channels_last(x.contiguous(memory_format=torch.channels_last)), expected,
                                   atol=1e-5, rtol=1e-5)


def test_config_repr_is_the_architecture_with_pool_only_when_not_cls():
    plain = repr(ViTConfig())
    assert plain == ("ViTConfig(image_size=224, patch_size=16, in_channels=3, num_classes=1000, hidden_dim=768, "
                     "num_layers=12, num_heads=12, mlp_dim=3072, dropout=0.0, attn_dropout=0.0)")
    assert repr(ViTConfig(pool="gap")) == plain[:-1] + ", pool='gap')"
