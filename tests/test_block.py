import pytest
import torch
from torchvision.models.vision_transformer import EncoderBlock as TorchvisionEncoderBlock
from torchvision.models.vision_transformer import MLPBlock as TorchvisionMLPBlock

from vit_replication.model.block import DropPath, EncoderBlock
from vit_replication.model.mlp import MLPBlock


def test_mlp_equals_torchvision_mlp_block():
    ours = MLPBlock(32, 64).eval()
    reference = TorchvisionMLPBlock(32, 64, 0.0).eval()
    with torch.no_grad():
        reference[0].weight.copy_(ours.fc1.weight)
        reference[0].bias.copy_(ours.fc1.bias)
        reference[3].weight.copy_(ours.fc2.weight)
        reference[3].bias.copy_(ours.fc2.bias)
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(ours(x), reference(x))
    assert ours(x).shape == (2, 5, 32)


def test_encoder_block_equals_torchvision_encoder_block():
    ours = EncoderBlock(32, 4, 64).eval()
    reference = TorchvisionEncoderBlock(4, 32, 64, 0.0, 0.0).eval()
    with torch.no_grad():
        pairs = [(reference.ln_1, ours.norm1), (reference.ln_2, ours.norm2),
                 (reference.self_attention.out_proj, ours.attention.proj),
                 (reference.mlp[0], ours.mlp.fc1), (reference.mlp[3], ours.mlp.fc2)]
        for ref, mine in pairs:
            torch.nn.init.normal_(mine.weight)
            torch.nn.init.normal_(mine.bias, std=0.1)
            ref.load_state_dict(mine.state_dict())
        reference.self_attention.in_proj_weight.copy_(ours.attention.qkv.weight)
        reference.self_attention.in_proj_bias.copy_(ours.attention.qkv.bias)
    z = torch.randn(2, 17, 32)
    torch.testing.assert_close(ours(z), reference(z), atol=1e-5, rtol=1e-5)


def test_block_is_identity_when_both_branches_output_zero():
    """Pre-LN residual form: z_l = z_{l-1} + MSA(...) + MLP(...) reduces to z_{l-1} when both branches are 0."""
    block = EncoderBlock(16, 2, 32).eval()
    torch.nn.init.zeros_(block.attention.proj.weight)
    torch.nn.init.zeros_(block.attention.proj.bias)
    torch.nn.init.zeros_(block.mlp.fc2.weight)
    torch.nn.init.zeros_(block.mlp.fc2.bias)
    z = torch.randn(2, 5, 16)
    torch.testing.assert_close(block(z), z)


def test_block_returns_attention():
    block = EncoderBlock(16, 2, 32).eval()
    z = torch.randn(3, 5, 16)
    out, weights = block(z, return_attention=True)
    torch.testing.assert_close(out, block(z), atol=1e-5, rtol=1e-5)
    assert weights.shape == (3, 2, 5, 5)


def test_drop_path_drops_whole_samples_and_keeps_expectation():
    drop = DropPath(0.25)
    x = torch.ones(4000, 3, 2)
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    y = drop(x)
    per_sample = y.reshape(4000, -1)
    assert ((per_sample == 0).all(1) | (per_sample == 1 / 0.75).all(1)).all()  # all-or-nothing per sample
    assert abs(y.mean().item() - 1.0) < 0.05
    assert 0.2 < (per_sample[:, 0] == 0).float().mean().item() < 0.3


def test_drop_path_rejects_bad_probability():
    with pytest.raises(ValueError, match=r"drop path probability must be in \[0, 1\), got 1.0"):
        DropPath(1.0)
