import pytest
import torch
import torchvision.models as tvm
from torch.utils.flop_counter import FlopCounterMode

from vit_replication.analysis.flops import (
    describe,
    forward_flops,
    forward_macs,
    kept_patches,
    run_training_flops,
    training_flops,
)
from vit_replication.data.augment import DeviceLoader
from vit_replication.model import ViT, get_config
from vit_replication.model.embedding import PatchDropout
from vit_replication.training.config import TrainConfig
from vit_replication.training.loop import Run, fit
from vit_replication.training.schedule import Progress


def _counted(model: torch.nn.Module, images: torch.Tensor, backward: bool = False) -> int:
    """FLOPs that PyTorch's own counter sees for one forward (and backward) pass."""
    with FlopCounterMode(display=False) as counter:
        logits = model(images)
        if backward:
            logits.sum().backward()
    return counter.get_total_flops()


def _explicit(model: ViT, patch_dropout: float = 0.0, dynamic_image_size: bool = False) -> ViT:
    """``model`` with the written-out attention (q k^T and A v as bmm, which the counter sees; it does not see CPU
    SDPA), patch dropout and other image sizes (``model.configure``)."""
    return model.configure(attention="explicit", patch_dropout=patch_dropout, dynamic_image_size=dynamic_image_size)


def _not_computed(config, images: int, image_size: int | None = None) -> int:
    """The documented difference (flops.py): the images need no gradient, so the patch projection's input gradient,
    2 FLOPs per MAC of Eq. 1, is not computed in the backward pass."""
    return images * 2 * forward_macs(config, image_size)["patch_embedding"]


@pytest.mark.parametrize("name", ["vit_cifar", "vit_ti_16"])
def test_forward_flops_equal_pytorchs_flop_counter(name):
    config = get_config(name)
    with torch.no_grad():
        counted = _counted(_explicit(ViT(config)).eval(), torch.randn(2, 3, config.image_size, config.image_size))
    assert counted == 2 * forward_flops(config)


def test_parts_follow_the_equations(tiny_config):
    macs = forward_macs(tiny_config)
    model = _explicit(ViT(tiny_config)).eval()
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


def test_training_step_is_three_forward_passes_but_the_images_gradient(tiny_config):
    counted = _counted(_explicit(ViT(tiny_config)), torch.randn(4, 3, 16, 16), backward=True)
    assert counted == training_flops(tiny_config, 4) - _not_computed(tiny_config, 4)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_kept_patches_are_the_tokens_patch_dropout_keeps(p):
    dropout = PatchDropout(p).train()
    for n in range(1, 70):
        kept = dropout(torch.zeros(2, 1 + n, 4)).shape[1] - 1  # without the class token
        assert kept_patches(n, p) == kept, (n, p)
    assert kept_patches(64, 0.0) == 64


def test_low_resolution_training_step_with_patch_dropout_is_counted_exactly(tiny_config):
    # 12x12 images of 4x4 patches: all 9 patches are embedded, int(9 x 0.75) = 6 of them and the class token go
    # through the encoder (round() would keep 7)
    assert forward_macs(tiny_config, 12, 0.25)["attention_scores"] == 2 * 2 * 7 * 7 * 32
    model = _explicit(ViT(tiny_config), patch_dropout=0.25, dynamic_image_size=True).train()
    counted = _counted(model, torch.randn(4, 3, 12, 12), backward=True)
    assert counted == training_flops(tiny_config, 4, 12, 0.25) - _not_computed(tiny_config, 4, 12)
    assert counted < training_flops(tiny_config, 4) - _not_computed(tiny_config, 4)  # less than at 16x16
    with torch.no_grad():  # evaluation keeps every token
        assert _counted(model.eval(), torch.randn(4, 3, 12, 12)) == 4 * forward_flops(tiny_config, 12)


def test_run_training_flops_add_up_the_steps_of_a_history_at_their_resolution(tiny_config):
    history = {"steps": [5, 5, 3], "low_res_steps": [5, 2, 0]}  # 7 of 13 steps of 8 images at 12x12 pixels
    assert run_training_flops(tiny_config, history, 8, 0.25, 12) == \
        training_flops(tiny_config, 7 * 8, 12, 0.25) + training_flops(tiny_config, 6 * 8, 16, 0.25)
    assert run_training_flops(tiny_config, history, 8) == training_flops(tiny_config, 13 * 8)  # no --low-res-size
    full = {"steps": [5, 5, 3], "low_res_steps": [0, 0, 0]}
    assert run_training_flops(tiny_config, full, 8, 0.25, 12) == training_flops(tiny_config, 13 * 8, 16, 0.25)
    assert run_training_flops(tiny_config, {"steps": [], "low_res_steps": []}, 8) == 0


def test_run_training_flops_are_what_fit_computes_to_the_flop(tiny_config):
    """Three epochs of 2 batches of 4 images, the first half of the steps (p < 0.5: steps 0-2) at 12x12 pixels
    with patch dropout, all counted by FlopCounterMode, and one evaluation of 4 images at the end."""
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    stats = (0.5,) * 3, (0.25,) * 3
    loaders = DeviceLoader(images, torch.arange(8) % 10, 4, True, stats), \
        DeviceLoader(images[:4], torch.arange(4), 4, False, stats)
    config = TrainConfig(loader="device", device="cpu", epochs=3, batch_size=4, low_res_size=12, low_res_fraction=0.5,
                         patch_dropout=0.25, eval_every=10, progress=False)
    run = Run.create(config, _explicit(ViT(tiny_config), patch_dropout=0.25, dynamic_image_size=True), loaders, "cpu")
    run.log = False
    with FlopCounterMode(display=False) as counter:
        history = fit(run, Progress(steps=run.steps()))
    assert history["steps"] == [2, 2, 2] and history["low_res_steps"] == [2, 1, 0]
    expected = run_training_flops(tiny_config, history, 4, 0.25, 12)
    assert expected == 3 * training_flops(tiny_config, 4, 12, 0.25) + 3 * training_flops(tiny_config, 4, 16, 0.25)
    not_computed = 3 * _not_computed(tiny_config, 4, 12) + 3 * _not_computed(tiny_config, 4)
    assert counter.get_total_flops() == expected - not_computed + 4 * forward_flops(tiny_config)


def test_shipped_cpu_run_did_a_third_of_the_work_of_full_size_epochs():
    # the CPU recipe's 257 epochs of 195 batches of 256: 180 at 16x16 (16 patches, 12 kept), 77 at 32x32 (64, 48)
    config = get_config("vit_cifar_cpu")
    history = {"steps": [195] * 257, "low_res_steps": [195] * 180 + [0] * 77}
    done = run_training_flops(config, history, 256, 0.25, 16)
    assert round(done / 1e15, 2) == 2.27 and round(training_flops(config, 195 * 256 * 257) / 1e15, 2) == 6.43


def test_describe_states_macs_and_flops():
    assert describe(get_config("vit_b_16")) == "17.564 GMACs = 35.128 GFLOPs per image (forward)"
