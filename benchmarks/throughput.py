"""Training and inference throughput (images/s) of our ViT against torchvision's VisionTransformer and a
naive-attention version of ours (explicit Eqs. 5-8 instead of fused SDPA), at the same config, in the same run;
also ours in channels-last memory format, and the matmul TFLOP/s ours reaches (``vit_replication.analysis.flops``).

    python benchmarks/throughput.py                          # GPU if present: ViT-S/16 at 224 and the CIFAR config
    python benchmarks/throughput.py --device cpu --small     # CPU, small batches: well under a minute

``--precision`` as in training (auto: bf16 on recent GPUs, fp16 on older ones, fp32 on CPU), ``--compile`` to
torch.compile every model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.analysis.flops import forward_flops, training_flops  # noqa: E402
from vit_replication.model import ViT, ViTConfig, get_config  # noqa: E402
from vit_replication.training.precision import PRECISIONS, autocast, grad_scaler  # noqa: E402
from vit_replication.training.precision_choice import choose_precision  # noqa: E402
from vit_replication.training.timing import seconds_per_step  # noqa: E402


def build_models(config: ViTConfig) -> dict[str, nn.Module]:
    """Ours (fused SDPA), ours with naive attention and ours in channels-last format (same weights), torchvision's
    VisionTransformer."""
    ours = ViT(config)
    naive = ViT(config, attention="explicit")
    naive.load_state_dict(ours.state_dict())
    channels_last = ViT(config).to(memory_format=torch.channels_last)
    channels_last.load_state_dict(ours.state_dict())
    reference = torchvision.models.VisionTransformer(
        image_size=config.image_size, patch_size=config.patch_size, num_layers=config.num_layers,
        num_heads=config.num_heads, hidden_dim=config.hidden_dim, mlp_dim=config.mlp_dim,
        num_classes=config.num_classes,
    )
    return {"ours": ours, "naive": naive, "channels_last": channels_last, "torchvision": reference}


def measure(model: nn.Module, config: ViTConfig, batch_size: int, device: torch.device, warmup: int, steps: int,
            precision: str) -> dict[str, float]:
    """Images/s for a training step (forward, backward, AdamW) and for inference (forward under no_grad)."""
    model = model.to(device)
    images = torch.randn(batch_size, 3, config.image_size, config.image_size, device=device)
    labels = torch.randint(0, config.num_classes, (batch_size,), device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    scaler = grad_scaler(device, precision)

    def train_step() -> None:
        with autocast(device, precision):
            loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    @torch.no_grad()
    def infer_step() -> None:
        with autocast(device, precision):
            model(images)

    def repeat(step: Callable[[], None]) -> Callable[[int], None]:
        return lambda n: [step() for _ in range(n)]

    model.train()
    train_seconds = seconds_per_step(repeat(train_step), device, warmup, steps)
    model.eval()
    infer_seconds = seconds_per_step(repeat(infer_step), device, warmup, steps)
    return {"train": batch_size / train_seconds, "infer": batch_size / infer_seconds}


def benchmark(name: str, batch_size: int, device: torch.device, warmup: int, steps: int, precision: str,
              compile_models: bool) -> dict:
    config = get_config(name)  # the CIFAR configs have 10 classes, the ImageNet ones 1000
    torch.manual_seed(0)
    results = {}
    for label, model in build_models(config).items():
        model = torch.compile(model) if compile_models else model
        results[label] = measure(model, config, batch_size, device, warmup, steps, precision)
    ratios = {f"{mode}_vs_{other}": results["ours"][mode] / results[other][mode]
              for mode in ("train", "infer") for other in ("torchvision", "naive")}
    ratios.update({f"channels_last_{mode}": results["channels_last"][mode] / results["ours"][mode]
                   for mode in ("train", "infer")})
    tflops = {"train": results["ours"]["train"] * training_flops(config, 1) / 1e12,
              "infer": results["ours"]["infer"] * forward_flops(config) / 1e12}
    return {"config": name, "image_size": config.image_size, "batch_size": batch_size, "images_per_s": results,
            "ratios": ratios, "ours_tflops_per_s": tflops}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--configs", nargs="+", default=["vit_s_16", "vit_cifar"])
    p.add_argument("--batch-size", type=int, nargs="+", default=None, help="one per config")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--small", action="store_true", help="small batches and few steps (the CPU default)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    small = args.small or device.type == "cpu"
    batch_sizes = args.batch_size or [(2 if c != "vit_cifar" else 16) if small else (256 if c != "vit_cifar" else 1024)
                                      for c in args.configs]
    steps, warmup = args.steps or (3 if small else 20), args.warmup or (2 if small else 5)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    precision = choose_precision(device, args.precision).precision
    print(f"device: {where}; torch {torch.__version__}; precision {precision}; "
          f"compile {args.compile}; {steps} timed steps after {warmup} warm-up")
    all_results = []
    for name, batch_size in zip(args.configs, batch_sizes):
        result = benchmark(name, batch_size, device, warmup, steps, precision, args.compile)
        all_results.append(result)
        print(f"\n{name} at {result['image_size']} px, batch {batch_size}: images/s")
        print(f"  {'model':<14} {'train':>10} {'infer':>10}")
        for label, speed in result["images_per_s"].items():
            print(f"  {label:<14} {speed['train']:>10.1f} {speed['infer']:>10.1f}")
        print("  ours / torchvision: train {train_vs_torchvision:.2f}x, infer {infer_vs_torchvision:.2f}x; "
              "ours / naive: train {train_vs_naive:.2f}x, infer {infer_vs_naive:.2f}x".format(**result["ratios"]))
        print("  channels-last / ours: train {channels_last_train:.2f}x, infer {channels_last_infer:.2f}x; "
              .format(**result["ratios"]) + "ours reaches {train:.3g} TFLOP/s training, {infer:.3g} TFLOP/s "
              "inference (matmuls)".format(**result["ours_tflops_per_s"]))
    if args.out:
        Path(args.out).write_text(json.dumps({"device": where, "results": all_results}, indent=1))
    return all_results


if __name__ == "__main__":
    main()
