"""Where a training step's time goes on this machine: PyTorch's profiler over a few training steps of a ViT,
the operator time grouped into matrix products, attention's softmax, LayerNorm, GELU, the optimizer, data
(crop/flip/resize) and the rest; the matrix products' achieved TFLOP/s beside the rate this machine's GEMM reaches
on one large product in the same format (``peak_gemm``), and the share of the step that reaches it.

    python benchmarks/profile_step.py                                   # vit_cifar_cpu, batch 256, 32x32, bf16
    python benchmarks/profile_step.py --model vit_cifar_tiny --image-size 16 --precision fp32 --out runs/profile.json
    python benchmarks/profile_step.py --model vit_cifar_tiny --image-size 16 --compile   # torch.compile'd model
    python benchmarks/profile_step.py --model vit_cifar_tiny --image-size 16 --optimizer muon

Run it on an idle machine: everything here is a timing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.analysis.flops import training_flops  # noqa: E402
from vit_replication.data.augment import random_crop_flip  # noqa: E402
from vit_replication.model import CONFIGS, Runtime, ViT  # noqa: E402
from vit_replication.training.optim import OPTIMIZERS, build_optimizer  # noqa: E402
from vit_replication.training.precision import autocast  # noqa: E402

GROUPS = (  # (group, substrings of the profiler's operator names), first match wins
    ("matrix products", ("addmm", "aten::mm", "aten::bmm", "matmul", "linear", "convolution", "conv2d")),
    ("softmax", ("softmax",)),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("optimizer", ("adamw", "_foreach", "lerp", "addcdiv", "addcmul")),
    ("data", ("reflection_pad", "index", "interpolate", "upsample", "flip", "randint", "where")),
)


def group_of(name: str) -> str:
    lowered = name.lower()
    return next((group for group, keys in GROUPS if any(k in lowered for k in keys)), "other")


def peak_gemm(precision: str, size: int = 2048, repeats: int = 5) -> float:
    """TFLOP/s of the best of ``repeats`` size x size x size matrix products in ``precision`` on the CPU."""
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e12


def _timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="vit_cifar_cpu", choices=list(CONFIGS))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=32, help="the training resolution (16: the low-res phase)")
    p.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--attention", default="explicit", choices=("explicit", "sdpa"))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS,
                   help="muon: Muon on the encoder's matrices (its orthogonalisation counts as matrix products)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (compiled in the warm-up steps)")
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    config = CONFIGS[args.model]
    torch.manual_seed(0)
    model = ViT(config, Runtime(attention=args.attention, dynamic_image_size=args.image_size != config.image_size))
    optimizer = build_optimizer(model, 1e-3, optimizer=args.optimizer, precision=args.precision)
    device = torch.device("cpu")
    forward = torch.compile(model) if args.compile else model
    raw = torch.rand(args.batch_size, 3, config.image_size, config.image_size)
    labels = torch.randint(0, config.num_classes, (args.batch_size,))
    generator = torch.Generator().manual_seed(0)

    def step():
        images = random_crop_flip(raw, 4, True, generator)
        if args.image_size != config.image_size:
            images = F.interpolate(images, size=(args.image_size,) * 2, mode="bilinear", antialias=True)
        with autocast(device, args.precision):
            loss = F.cross_entropy(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    tic = time.perf_counter()
    step(), step()  # warm-up: oneDNN builds its kernels for these shapes (and torch.compile compiles)
    warmup_seconds = time.perf_counter() - tic
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tic = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = (time.perf_counter() - tic) / args.steps
    self_time = defaultdict(float)  # seconds per step, by group, from the operators' own (self) CPU time
    for event in prof.key_averages():
        self_time[group_of(event.key)] += event.self_cpu_time_total / 1e6 / args.steps
    total = sum(self_time.values())
    work = training_flops(config, args.batch_size, args.image_size)  # FLOPs of one step (forward + backward)
    peak = peak_gemm(args.precision)
    result = {"model": args.model, "batch_size": args.batch_size, "image_size": args.image_size,
              "precision": args.precision, "attention": args.attention, "optimizer": args.optimizer,
              "compile": args.compile,
              "warmup_seconds": warmup_seconds, "seconds_per_step": seconds,
              "images_per_s": args.batch_size / seconds, "step_tflops": work / seconds / 1e12,
              "matrix_product_tflops": work / max(self_time["matrix products"], 1e-12) / 1e12,
              "peak_gemm_tflops": peak, "share_of_time": {g: t / total for g, t in sorted(self_time.items())},
              "machine": torch.__config__.parallel_info().splitlines()[0:3]}
    print(f"{args.model}, batch {args.batch_size}, {args.image_size}x{args.image_size}, {args.precision}, "
          f"{args.attention} attention, {args.optimizer}{', compiled' if args.compile else ''}: "
          f"{seconds * 1e3:.0f} ms a step, "
          f"{result['images_per_s']:.0f} images/s (the two warm-up steps: {warmup_seconds:.1f} s)")
    for group, share in sorted(result["share_of_time"].items(), key=lambda kv: -kv[1]):
        print(f"  {group:<16} {share:6.1%}")
    print(f"whole step {result['step_tflops']:.3f} TFLOP/s; its matrix products alone "
          f"{result['matrix_product_tflops']:.3f} TFLOP/s; one large {args.precision} GEMM on this machine "
          f"{peak:.3f} TFLOP/s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
