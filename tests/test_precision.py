from types import SimpleNamespace

import pytest
import torch
from torch import nn

from vit_replication.model import ViT
from vit_replication.training import precision_choice
from vit_replication.training.config import TrainConfig
from vit_replication.training.loop import Run, train_step
from vit_replication.training.precision import autocast, grad_scaler
from vit_replication.training.precision_choice import (
    PROBE_BATCH,
    PROBE_GIVE_UP,
    PROBE_TIMED_BATCH,
    PrecisionChoice,
    choose_precision,
    probe_step_seconds,
)

CUDA = torch.device("cuda")  # only a label here: nothing is put on it
CPU = torch.device("cpu")


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_auto_precision_follows_the_gpu_generation(capability, expected):
    choice = choose_precision(CUDA, capability=capability)  # T4, V100: fp16; A100, H100: bf16
    assert (choice.precision, choice.attention) == (expected, "sdpa")
    assert f"compute capability {capability[0]}.{capability[1]}" in choice.reason


def timer(rates: dict[str, float], calls: list | None = None):
    """A step timer that reports ``rates`` (training images/s per "precision attention") and gives up, as the probe
    does, on a candidate slower than the limit it is given."""
    def step_seconds(precision: str, attention: str, give_up_after: float | None) -> float | None:
        if calls is not None:
            calls.append((precision, attention, give_up_after))
        seconds = 1 / rates[f"{precision} {attention}"]
        return None if give_up_after is not None and seconds > give_up_after else seconds
    return step_seconds


# training images/s of vit_cifar_cpu measured with benchmarks/cpu_precision.py under each ONEDNN_MAX_CPU_ISA
AMX = {"fp32 sdpa": 122, "fp32 explicit": 145, "bf16 explicit": 395, "bf16 sdpa": 209}
AVX512 = {"fp32 sdpa": 148, "fp32 explicit": 183, "bf16 explicit": 118, "bf16 sdpa": 95}
AVX2 = {"fp32 sdpa": 147, "fp32 explicit": 143, "bf16 explicit": 10, "bf16 sdpa": 13}


@pytest.mark.parametrize("rates, expected, given_up", [
    (AMX, ("bf16", "explicit"), []),  # AVX-512 BF16 / AMX: bf16 2.7x faster
    (AVX512, ("fp32", "explicit"), []),  # AVX-512 without bf16: emulated, slower
    (AVX2, ("fp32", "sdpa"), ["bf16 explicit", "bf16 sdpa"]),  # AVX2: more than 4x slower, given up on
])
def test_auto_precision_on_a_cpu_is_the_fastest_of_the_timed_candidates(rates, expected, given_up):
    calls = []
    choice = choose_precision(CPU, step_seconds=timer(rates, calls))
    assert (choice.precision, choice.attention) == expected
    # fp32 with SDPA is timed first, with no limit; each later candidate may be given up on at 4x the best so far
    best = [max(list(rates.values())[:i]) for i in range(1, 4)]
    assert calls == [("fp32", "sdpa", None)] + [(*c.split(), PROBE_GIVE_UP / b) for c, b in zip(list(rates)[1:], best)]
    shown = ", ".join(f"{c} far slower" if c in given_up else f"{c} {r}" for c, r in rates.items())
    assert choice.reason == f"timed on this CPU, training images/s: {shown}"


def test_explicit_choices_pass_through_and_attention_follows_the_format():
    never = timer({}, None)  # would fail if called: an explicit precision is not timed
    assert choose_precision(CPU, "bf16", step_seconds=never) == PrecisionChoice("bf16", "explicit", "as asked")
    assert choose_precision(CPU, "fp32", step_seconds=never).attention == "sdpa"
    assert choose_precision(CPU, "bf16", "sdpa", step_seconds=never).attention == "sdpa"
    assert choose_precision(CUDA, "fp16", capability=(9, 0)) == PrecisionChoice("fp16", "sdpa", "as asked")
    # auto precision with a given kernel times that kernel only
    calls = []
    choice = choose_precision(CPU, "auto", "sdpa", step_seconds=timer(AMX, calls))
    assert (choice.precision, choice.attention) == ("bf16", "sdpa") and [c[:2] for c in calls] == [
        ("fp32", "sdpa"), ("bf16", "sdpa")]


def test_the_cpu_probe_times_real_steps_and_gives_up_on_a_slow_warm_up(monkeypatch, tiny_config):
    """``probe_step_seconds`` (of a tiny ViT) with an injected clock: each step reads the clock twice, 32 s apart,
    and the fastest timed step counts."""
    ticks = iter(range(1000))
    monkeypatch.setattr(precision_choice, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * PROBE_BATCH))
    # a warm-up step of 32 images, then 3 timed steps of 128 images, 32 s each: 0.25 s per image
    assert PROBE_TIMED_BATCH == 128 and probe_step_seconds("fp32", "sdpa", config=tiny_config) == 32 / 128
    # the warm-up step was too slow
    assert probe_step_seconds("bf16", "explicit", give_up_after=0.5, config=tiny_config) is None
    # a slow second step does not count: the clock jumps 100 s during it
    readings = iter([0, 32, 100, 132, 400, 532, 600, 632])
    monkeypatch.setattr(precision_choice, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    assert probe_step_seconds("fp32", "sdpa", config=tiny_config) == 32 / 128


def test_autocast_computes_in_the_chosen_format_on_cpu():
    x = torch.randn(4, 8)
    layer = nn.Linear(8, 8)
    with autocast(torch.device("cpu"), "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert layer(x).dtype == torch.float32
    with pytest.raises(ValueError, match="choose_precision resolves 'auto'"):
        autocast(torch.device("cpu"), "auto")


def test_grad_scaler_step_equals_the_unscaled_step_without_overflow(tiny_config):
    """fp16's loss scaling multiplies the loss by 2^16 and divides the gradients back before the step (and before
    clipping): without overflow the step is the unscaled one. The scaler runs on CPU too."""
    device = torch.device("cpu")
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    results = []
    for scaled in (False, True):
        torch.manual_seed(0)
        model = ViT(tiny_config)
        run = Run(TrainConfig(grad_clip=1.0, device="cpu"), model, [], [], torch.optim.SGD(model.parameters(), lr=0.1),
                  nn.CrossEntropyLoss(), device)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, enabled=scaled)
        train_step(run, images, labels, scaler)
        results.append((model.state_dict(), scaler.get_scale() if scaled else None))
    (plain, _), (scaled_state, scale) = results
    assert scale == 2.0**16  # no inf/NaN: the step was taken and the scale kept
    for key, value in plain.items():
        torch.testing.assert_close(scaled_state[key], value, rtol=1e-5, atol=1e-6)
    assert grad_scaler(device, "fp16").is_enabled() and not grad_scaler(device, "bf16").is_enabled()


@pytest.mark.parametrize("flags, kind", [("fpu avx2", "AVX2 only"), ("fpu avx2 avx512f", "AVX-512"),
                                         ("fpu avx2 avx512f avx512_bf16", "AVX-512 BF16"),
                                         ("fpu avx2 avx512f avx512_bf16 amx_bf16", "AMX")])
def test_machine_names_the_instruction_set_that_decides_what_is_fast(monkeypatch, flags, kind):
    from vit_replication.analysis import report

    monkeypatch.setattr(report, "cpuinfo_field", lambda name: {"model name": "Some CPU", "flags": flags}[name])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert report.machine().startswith(f"Some CPU ({kind}), {torch.get_num_threads()} threads, torch ")
