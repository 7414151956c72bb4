"""Which number format, and which attention kernel, train fastest on the machine at hand: the one precision policy
that the command line, its presets, the notebooks and the benchmarks use.

On a GPU the generation decides: bf16 at compute capability >= 8.0 (A100, H100, RTX 30xx and later), fp16 with loss
scaling below it (Colab's T4, V100), where bf16 matrix products are emulated.

On a CPU, reading the chip's flags is not enough. CPUs with AVX-512 BF16 or AMX run bf16 matrix products two to
three times faster than fp32; on the others (most laptops, many cloud machines) bf16 is emulated and up to 25x
*slower* than fp32; and a library such as oneDNN can be told to leave those units unused (``ONEDNN_MAX_CPU_ISA``),
which no flag shows. So the CPU's answer is measured: a training step of a small ViT is timed in each format with
each attention kernel (PyTorch's fused SDPA, or Eqs. 5-8 written out: the fused CPU kernel is slow in bf16's backward
pass, and which is faster in fp32 differs between CPUs), and the fastest is kept. It takes a second or two where bf16
is fast, a few seconds where it is emulated (a candidate far slower than the best is given up on after one step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import torch
import torch.nn.functional as F

from ..distributed import all_reduce_max, is_distributed
from ..model.vit import ATTENTIONS as KERNELS
from ..model.vit import CONFIGS, Runtime, ViT, ViTConfig
from .precision import autocast

ATTENTIONS = ("auto", *KERNELS)  # the attention kernels a run may ask for, or "auto"

# every format with both kernels, the safe format first: which kernel is faster differs between CPUs too
CPU_CANDIDATES = (("fp32", "sdpa"), ("fp32", "explicit"), ("bf16", "explicit"), ("bf16", "sdpa"))
PROBE_BATCH = 32  # images in the warm-up step, after which a candidate may be given up on
PROBE_TIMED_BATCH = 128  # images per timed step: a step of 32 lasts a few ms for a small ViT, too short to time
PROBE_STEPS = 3  # timed steps per candidate, the fastest counts (a busy machine slows some steps down)
PROBE_GIVE_UP = 4.0  # a candidate whose warm-up step is this many times slower than the best timed step is dropped
PROBE_CONFIG = CONFIGS["vit_cifar_cpu"]  # the probe model when a caller names none (D=128, L=6, 32x32 images)

StepTimer = Callable[[str, str, "float | None"], "float | None"]


@dataclass(frozen=True)
class PrecisionChoice:
    """A number format, the attention kernel to use with it, and why they were chosen (every run prints it)."""

    precision: str  # bf16 | fp16 | fp32
    attention: str  # sdpa | explicit
    reason: str

    def __str__(self) -> str:
        return f"precision {self.precision} with {self.attention} attention ({self.reason})"


def choose_precision(device: torch.device | str, precision: str = "auto", attention: str = "auto", *,
                     config: ViTConfig = PROBE_CONFIG, capability: tuple[int, int] | None = None,
                     step_seconds: StepTimer | None = None) -> PrecisionChoice:
    """The number format and attention kernel to train with on ``device``.

    ``precision="auto"``: on a GPU, bf16 at compute capability >= 8.0 and fp16 (with loss scaling) below; on a CPU,
    the fastest of ``CPU_CANDIDATES`` (with the given ``attention`` only, unless it is "auto"), as timed on this CPU
    for a ViT of ``config`` (default: ``vit_cifar_cpu``'s shape).
    With a given precision, ``attention="auto"`` is the written-out attention for bf16 on a CPU and the fused kernel
    (SDPA) otherwise. Values given explicitly are kept. For tests, ``capability``
    replaces what the GPU reports and ``step_seconds(precision, attention, give_up_after)`` the timing (seconds
    per image, or None for a candidate given up on)."""
    device = torch.device(device)
    reason = "as asked"
    if precision == "auto" and device.type == "cuda":
        major, minor = capability or torch.cuda.get_device_capability(device)
        precision = "bf16" if major >= 8 else "fp16"
        reason = (f"GPU of compute capability {major}.{minor}: "
                  + ("native bf16" if major >= 8 else "bf16 would be emulated, fp16 with loss scaling"))
    elif precision == "auto" and device.type == "cpu":
        candidates = tuple(c for c in CPU_CANDIDATES if attention in ("auto", c[1]))
        precision, attention, reason = (fastest_on_cpu(step_seconds, candidates) if step_seconds
                                        else measured_on_this_cpu(candidates, config))
    elif precision == "auto":
        precision, reason = "fp32", f"no mixed-precision rule for {device.type}"
    if attention == "auto":
        attention = "explicit" if device.type == "cpu" and precision == "bf16" else "sdpa"
    return PrecisionChoice(precision, attention, reason)


def fastest_on_cpu(step_seconds: StepTimer, candidates: tuple = CPU_CANDIDATES) -> tuple[str, str, str]:
    """(precision, attention, reason): the CPU candidate with the fewest seconds per training image; each
    candidate after the first is given up on when its warm-up step is ``PROBE_GIVE_UP`` times slower than the best
    so far."""
    timed: dict[tuple[str, str], float | None] = {}
    for candidate in candidates:
        finished = [s for s in timed.values() if s is not None]
        timed[candidate] = step_seconds(*candidate, PROBE_GIVE_UP * min(finished) if finished else None)
    best = min((c for c in timed if timed[c] is not None), key=timed.get)
    rates = ", ".join(f"{p} {a} " + (f"{1 / timed[(p, a)]:.0f}" if timed[(p, a)] is not None else "far slower")
                      for p, a in candidates)
    return (*best, f"timed on this CPU, training images/s: {rates}")


@cache
def measured_on_this_cpu(candidates: tuple = CPU_CANDIDATES, config: ViTConfig = PROBE_CONFIG
                         ) -> tuple[str, str, str]:
    """``fastest_on_cpu`` timed with ``probe_step_seconds`` on a ViT of ``config``; once per process and config."""
    return fastest_on_cpu(partial(probe_step_seconds, config=config), candidates)


def probe_step_seconds(precision: str, attention: str, give_up_after: float | None = None,
                       config: ViTConfig = PROBE_CONFIG) -> float | None:
    """Seconds per image of one training step (forward and backward) of a ViT of ``config`` on the CPU in
    ``precision`` with ``attention`` (``probe_model``)."""
    size = config.image_size
    return probe_model(ViT(config, Runtime(attention=attention)), (config.in_channels, size, size),
                       config.num_classes, precision, give_up_after)


def probe_model(model: torch.nn.Module, image_shape: tuple[int, int, int], num_classes: int, precision: str,
                give_up_after: float | None = None) -> float | None:
    """Seconds per image of one training step (forward and backward) of ``model`` on random images of
    ``image_shape`` on the CPU in ``precision``: a warm-up step of ``PROBE_BATCH`` images, then the fastest of
    ``PROBE_STEPS`` steps of ``PROBE_TIMED_BATCH``; None when the warm-up step already took more than
    ``give_up_after`` seconds per image (a format this CPU emulates, given up on before its slower, larger steps)."""
    generator = torch.Generator().manual_seed(0)

    def step(batch: int) -> float:
        images = torch.randn(batch, *image_shape, generator=generator)
        labels = torch.randint(0, num_classes, (batch,), generator=generator)
        tic = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        return (time.perf_counter() - tic) / batch

    warm_up = step(PROBE_BATCH)
    seconds = None
    if give_up_after is None or warm_up <= give_up_after:
        seconds = min(step(PROBE_TIMED_BATCH) for _ in range(PROBE_STEPS))
    if is_distributed():  # every process under torchrun must make the same choice: the slowest process's timing
        slowest = all_reduce_max(torch.tensor([math.inf if seconds is None else seconds])).item()
        seconds = None if math.isinf(slowest) else slowest
    return seconds
