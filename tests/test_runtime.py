"""Runtime settings (``model.Runtime``) are applied to a built model and are not part of its architecture: each one
changes what it should, old checkpoints (whose config held them) load without them, and --resume may change them."""

import pytest
import torch

from vit_replication import train
from vit_replication.errors import UserError
from vit_replication.model import Runtime, ViT, config_dict
from vit_replication.training.config import model_config, model_runtime
from vit_replication.weights.checkpoint import load_checkpoint
from vit_replication.weights.trained import check_resumable, model_from_checkpoint, runtime_changes


def test_explicit_attention_computes_what_sdpa_computes(tiny_config):
    model = ViT(tiny_config).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        fused = model(x)
        assert all(block.attention.use_sdpa for block in model.encoder)
        model.configure(attention="explicit")
        assert not any(block.attention.use_sdpa for block in model.encoder)
        torch.testing.assert_close(model(x), fused, atol=1e-5, rtol=1e-5)


def test_patch_dropout_keeps_1_minus_p_of_the_patches_while_training_only(tiny_config):
    model = ViT(tiny_config).configure(patch_dropout=0.5)
    x = torch.randn(2, 3, 16, 16)
    assert model.train().forward_features(x).shape == (2, 1 + 8, 32)  # class token + half of the 16 patches
    assert model.eval().forward_features(x).shape == (2, 1 + 16, 32)  # none dropped in eval
    model.configure(patch_dropout=0.0)
    assert model.train().forward_features(x).shape == (2, 17, 32)


def test_drop_path_rises_linearly_to_its_rate_and_acts_in_training_only(tiny_config):
    model = ViT(tiny_config, num_layers=5, drop_path=0.2)
    assert [block.drop_path.p for block in model.encoder] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        model.eval()
        expected = model(x)
        model.configure(drop_path=0.0)
        torch.testing.assert_close(model(x), expected)  # eval: no effect
        model.train().configure(drop_path=0.9)
        assert not torch.allclose(model(x), expected, atol=1e-4)


def test_dynamic_image_size_is_switched_on_a_built_model(tiny_config):
    model = ViT(tiny_config).eval()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="expected images of 16x16 pixels, got 8x8"):
        model(x)
    assert model.configure(dynamic_image_size=True)(x).shape == (1, 10)


def test_runtime_changes_neither_config_nor_weights(tiny_config):
    torch.manual_seed(1)
    plain = ViT(tiny_config)
    torch.manual_seed(1)
    configured = ViT(tiny_config, Runtime(attention="explicit", patch_dropout=0.25, drop_path=0.1))
    assert configured.config == plain.config and configured.runtime.patch_dropout == 0.25
    for (name, a), (other, b) in zip(plain.state_dict().items(), configured.state_dict().items()):
        assert name == other and torch.equal(a, b)
    assert ViT(tiny_config, drop_path=0.1).runtime == Runtime(drop_path=0.1)  # keyword arguments: either dataclass
    with pytest.raises(UserError, match=r"Runtime.patch_dropout must be in \[0, 1\), got 1.5"):
        plain.configure(patch_dropout=1.5)


def test_a_checkpoint_loads_with_the_default_runtime(tiny_config):
    original = ViT(tiny_config, patch_dropout=0.25).eval()
    model = model_from_checkpoint({"config": config_dict(tiny_config), "model": original.state_dict()})
    assert model.config == tiny_config and model.runtime == Runtime()
    x = torch.randn(2, 3, 16, 16)
    assert model.train().forward_features(x).shape[1] == 17  # no patch dropout in fine-tuning
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), original(x))


def test_resume_compares_the_architecture_and_lists_runtime_changes(tiny_config, tmp_path):
    runtime = Runtime(attention="explicit", patch_dropout=0.25, drop_path=0.1, dynamic_image_size=True)
    checkpoint = {"config": config_dict(tiny_config), "runtime": config_dict(runtime)}
    check_resumable(checkpoint, config_dict(tiny_config), tmp_path / "checkpoint.pt")
    assert runtime_changes(checkpoint, vars(Runtime(attention="explicit", patch_dropout=0.25, drop_path=0.1,
                                                    dynamic_image_size=True))) == []
    assert runtime_changes(checkpoint, vars(Runtime())) == [
        "attention: 'explicit' -> 'sdpa'", "drop_path: 0.1 -> 0.0", "dynamic_image_size: True -> False",
        "patch_dropout: 0.25 -> 0.0"]
    wider = config_dict(tiny_config) | {"hidden_dim": 64}
    with pytest.raises(UserError, match="holds another model \\(hidden_dim: 32 -> 64\\)"):
        check_resumable(checkpoint, wider, tmp_path / "checkpoint.pt")


def test_cli_resume_with_another_runtime_setting_is_accepted_and_recorded(tmp_path, capsys):
    options = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
               "--no-progress", "--precision", "fp32", "--hidden-dim", "32", "--num-heads", "2", "--mlp-dim", "64",
               "--num-layers", "1", "--out", str(tmp_path)]
    train.main(options + ["--epochs", "1"])
    metrics = train.main(options + ["--epochs", "2", "--resume", "--patch-dropout", "0.25", "--drop-path", "0"])
    out = capsys.readouterr().out
    assert "--resume with other runtime settings: drop_path: 0.1 -> 0.0; patch_dropout: 0.0 -> 0.25" in out
    assert metrics["epochs"] == 2 and metrics["runtime"]["patch_dropout"] == 0.25
    assert metrics["args"]["runtime_changes"] == ["drop_path: 0.1 -> 0.0", "patch_dropout: 0.0 -> 0.25"]
    stored = load_checkpoint(tmp_path / "checkpoint.pt")
    assert stored["runtime"]["patch_dropout"] == 0.25 and "patch_dropout" not in stored["config"]


def test_cli_drop_path_defaults_to_the_recipe_of_each_model():
    runtime = lambda argv: model_runtime(train.parse_args(argv), "sdpa")  # noqa: E731
    assert runtime(["--model", "vit_cifar"]).drop_path == 0.1 and runtime([]).drop_path == 0.1
    assert runtime(["--model", "vit_s_cifar"]).drop_path == 0.1 and runtime(["--model", "vit_b_16"]).drop_path == 0
    preset = runtime(["--preset", "cifar10-cpu"])
    assert (preset.patch_dropout, preset.drop_path, preset.dynamic_image_size) == (0.25, 0.0, True)
    assert runtime(["--model", "vit_cifar", "--drop-path", "0.2"]).drop_path == 0.2
    assert "drop_path" not in config_dict(model_config(train.parse_args([])))
