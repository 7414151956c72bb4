import pytest
import torch
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

from vit_replication.flops import describe, forward_flops, forward_macs, training_flops
from vit_replication.model import ViT, get_config


def _counted(model: torch.nn.Module, images: torch.Tensor, backward: bool = False) -> int:
    """FLOPs that PyTorch's own counter sees for one forward (and backward) pass."""
    with FlopCounterMode(display=False) as counter:
        logits = model(images)
        if backward:
            logits.sum().backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["vit_cifar", "vit_ti_16"])
def test_forward_flops_equal_pytorchs_flop_counter(name):
    # The explicit-attention path runs q k^T and A v as bmm, which the counter sees (it does not see CPU SDPA).
    config = get_config(name, use_sdpa=False)
    with torch.no_grad():
        counted = _counted(ViT(config).eval(), torch.randn(2, 3, config.image_size, config.image_size))
    assert counted == 2 * forward_flops(config)


def test_parts_follow_the_equations(tiny_config):
    macs = forward_macs(tiny_config)
    model = ViT(tiny_config, use_sdpa=False).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    per_module = counter.get_flop_counts()
    assert sum(per_module["ViT.embedding"].values()) == 2 * macs["patch_embedding"]
    assert sum(per_module["ViT.head"].values()) == 2 * macs["head"]
    mlp = sum(sum(per_module[f"ViT.encoder.{i}.mlp"].values()) for i in range(tiny_config.num_layers))
    assert mlp == 2 * macs["mlp"]
    assert macs["total"] == sum(v for k, v in macs.items() if k != "total")


@pytest.mark.parametrize(("name", "weights"), [
    ("vit_b_16", tvm.ViT_B_16_Weights.IMAGENET1K_V1),
    ("vit_b_32", tvm.ViT_B_32_Weights.IMAGENET1K_V1),
    ("vit_l_16", tvm.ViT_L_16_Weights.IMAGENET1K_V1),
])
def test_macs_match_torchvisions_published_gflops(name, weights):
    assert round(forward_macs(get_config(name))["total"] / 1e9, 3) == weights.meta["_ops"]


def test_training_costs_about_three_forward_passes(tiny_config):
    model = ViT(tiny_config, use_sdpa=False)
    counted = _counted(model, torch.randn(4, 3, 16, 16), backward=True)
    # The images need no gradient, so the patch projection's input gradient is not computed: a little under 3x.
    assert 0.97 * training_flops(tiny_config, 4) < counted <= training_flops(tiny_config, 4)


def test_describe_states_macs_and_flops():
    assert describe(get_config("vit_b_16")) == "17.564 GMACs = 35.128 GFLOPs per image (forward)"
