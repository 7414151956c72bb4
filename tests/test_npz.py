import numpy as np
import pytest
import torch
from torchvision.models.vision_transformer import VisionTransformer

from vit_replication.model import ViT
from vit_replication.weights.npz import config_from_npz, download_npz, load_npz, npz_arrays_from_vit, save_npz


def google_arrays_from_torchvision(tv: VisionTransformer) -> dict[str, np.ndarray]:
    """The google-research ViT-B_16.npz layout written from torchvision's weights, independently of the package."""
    s = {k: v.detach().numpy() for k, v in tv.state_dict().items()}
    d, h = tv.hidden_dim, tv.encoder.layers[0].num_heads
    arrays = {
        "embedding/kernel": s["conv_proj.weight"].transpose(2, 3, 1, 0), "embedding/bias": s["conv_proj.bias"],
        "cls": s["class_token"], "Transformer/posembed_input/pos_embedding": s["encoder.pos_embedding"],
        "Transformer/encoder_norm/scale": s["encoder.ln.weight"], "Transformer/encoder_norm/bias": s["encoder.ln.bias"],
        "head/kernel": s["heads.head.weight"].T, "head/bias": s["heads.head.bias"],
    }
    for i in range(len(tv.encoder.layers)):
        p, b = f"encoder.layers.encoder_layer_{i}.", f"Transformer/encoderblock_{i}/"
        in_w = np.split(s[p + "self_attention.in_proj_weight"], 3)
        in_b = np.split(s[p + "self_attention.in_proj_bias"], 3)
        for name, w, bias in zip(("query", "key", "value"), in_w, in_b):
            arrays[b + f"MultiHeadDotProductAttention_1/{name}/kernel"] = w.T.reshape(d, h, d // h)
            arrays[b + f"MultiHeadDotProductAttention_1/{name}/bias"] = bias.reshape(h, d // h)
        arrays[b + "MultiHeadDotProductAttention_1/out/kernel"] = s[p + "self_attention.out_proj.weight"].T.reshape(
            h, d // h, d)
        arrays[b + "MultiHeadDotProductAttention_1/out/bias"] = s[p + "self_attention.out_proj.bias"]
        for ln, name in (("ln_1", "LayerNorm_0"), ("ln_2", "LayerNorm_2")):
            arrays[b + f"{name}/scale"], arrays[b + f"{name}/bias"] = s[p + ln + ".weight"], s[p + ln + ".bias"]
        for j, name in ((0, "Dense_0"), (3, "Dense_1")):
            arrays[b + f"MlpBlock_3/{name}/kernel"] = s[p + f"mlp.{j}.weight"].T
            arrays[b + f"MlpBlock_3/{name}/bias"] = s[p + f"mlp.{j}.bias"]
    return arrays


def small_torchvision_vit() -> VisionTransformer:
    tv = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=32, mlp_dim=64,
                           num_classes=7).eval()
    with torch.no_grad():  # torchvision zero-initialises the head; give it weights that the test can see
        tv.heads.head.weight.normal_()
        tv.heads.head.bias.normal_()
    return tv


def test_npz_written_from_torchvision_loads_to_the_same_logits(tmp_path):
    tv = small_torchvision_vit()
    np.savez(tmp_path / "ViT-tiny.npz", **google_arrays_from_torchvision(tv))
    ours = load_npz(tmp_path / "ViT-tiny.npz").eval()
    assert (ours.config.image_size, ours.config.patch_size, ours.config.num_heads, ours.config.num_classes) == (
        32, 8, 4, 7)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), tv(x), atol=1e-5, rtol=1e-5)


def test_round_trip_through_npz_is_exact(tiny_config, tmp_path):
    model = ViT(tiny_config).eval()
    save_npz(model, tmp_path / "model.npz")
    again = load_npz(tmp_path / "model.npz").eval()
    assert again.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(again(x), model(x))


def test_export_matches_the_independent_torchvision_writer():
    from vit_replication.weights.convert import vit_from_torchvision

    tv = small_torchvision_vit()
    ours = npz_arrays_from_vit(vit_from_torchvision(tv))
    reference = google_arrays_from_torchvision(tv)
    assert ours.keys() == reference.keys()
    for key in reference:
        np.testing.assert_allclose(ours[key], reference[key], err_msg=key)


def test_new_num_classes_drops_the_head_and_pre_logits(tiny_config, tmp_path):
    arrays = npz_arrays_from_vit(ViT(tiny_config))
    arrays["pre_logits/kernel"] = np.zeros((32, 32), np.float32)
    np.savez(tmp_path / "pre.npz", **arrays)
    model = load_npz(tmp_path / "pre.npz", num_classes=3)
    assert model.head.out_features == 3
    with pytest.raises(ValueError, match="pre_logits"):
        load_npz(tmp_path / "pre.npz")


def test_bad_files_give_clear_errors(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="missing embedding/kernel"):
        load_npz(tmp_path / "other.npz")
    arrays = {"embedding/kernel": np.zeros((4, 4, 3, 8)), "head/kernel": np.zeros((8, 2)),
              "Transformer/posembed_input/pos_embedding": np.zeros((1, 11, 8))}
    with pytest.raises(ValueError, match="not a square grid"):
        config_from_npz(arrays)


def test_download_offline_fails_in_one_clear_line(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(RuntimeError, match=r"https://storage.googleapis.com/vit_models/imagenet21k/ViT-B_16.npz "
                                           r"could not be downloaded .*run once with internet access"):
        download_npz("ViT-B_16", "imagenet21k", tmp_path)
