import pytest
import torch
from torch import nn

from vit_replication.engine import train_one_epoch
from vit_replication.errors import UserError
from vit_replication.model import ViT
from vit_replication.precision import autocast, grad_scaler, resolve_precision

CUDA = torch.device("cuda")  # only a label here: nothing is put on it


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_auto_precision_follows_the_gpu_generation(capability, expected):
    assert resolve_precision("auto", CUDA, capability) == expected  # T4, V100: fp16; A100, H100: bf16


def test_auto_is_fp32_on_cpu_and_explicit_choices_pass_through():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    for choice in ("bf16", "fp16", "fp32"):
        assert resolve_precision(choice, cpu) == choice == resolve_precision(choice, CUDA, (7, 5))
    with pytest.raises(UserError, match="unknown precision 'fp8'; choose one of auto, bf16, fp16, fp32"):
        resolve_precision("fp8", cpu)


def test_autocast_computes_in_the_chosen_format_on_cpu():
    x = torch.randn(4, 8)
    layer = nn.Linear(8, 8)
    with autocast(torch.device("cpu"), "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert layer(x).dtype == torch.float32


def test_grad_scaler_step_equals_the_unscaled_step_without_overflow(tiny_config):
    """fp16's loss scaling multiplies the loss by 2^16 and divides the gradients back before the step (and before
    clipping): without overflow the step is the unscaled one. The scaler runs on CPU too."""
    device = torch.device("cpu")
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    results = []
    for scaled in (False, True):
        torch.manual_seed(0)
        model = ViT(tiny_config)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, enabled=scaled)
        train_one_epoch(model, [(images, labels)], optimizer, None, nn.CrossEntropyLoss(), device, "fp32", 1.0,
                        False, scaler=scaler)
        results.append((model.state_dict(), scaler.get_scale() if scaled else None))
    (plain, _), (scaled_state, scale) = results
    assert scale == 2.0**16  # no inf/NaN: the step was taken and the scale kept
    for key, value in plain.items():
        torch.testing.assert_close(scaled_state[key], value, rtol=1e-5, atol=1e-6)
    assert grad_scaler(device, "fp16").is_enabled() and not grad_scaler(device, "bf16").is_enabled()


def test_fast_precision_uses_bf16_only_on_cpus_that_compute_it():
    from vit_replication.precision import fast_precision

    cpu = torch.device("cpu")
    assert fast_precision(cpu, "flags : fpu sse2 avx512f avx512_bf16 amx_tile") == "bf16"
    assert fast_precision(cpu, "flags : fpu sse2 amx_bf16") == "bf16"
    assert fast_precision(cpu, "flags : fpu sse2 avx2 avx512f") == "fp32"  # bf16 would be emulated
    assert fast_precision(cpu, "") == "fp32"
