"""What a reader's CPU gets: training images/s of the CPU recipe's model (``vit_cifar_cpu``, 32x32 images, batch
256) in fp32 and bf16, each with the fused (SDPA) and the written-out attention, on this CPU as it is and with
oneDNN limited to the instruction sets of ordinary CPUs, side by side in one run; and what
``--precision auto`` (``precision_choice.choose_precision``) picks on each, and how long it took to decide.

    python benchmarks/cpu_precision.py                 # about 5 minutes on a 2-core CPU
    python benchmarks/cpu_precision.py --isas AVX2     # one kind only

``ONEDNN_MAX_CPU_ISA`` caps the instructions oneDNN (PyTorch's CPU matrix-product library) may use: ``AVX2`` is a
typical laptop or desktop without AVX-512; ``AVX512_CORE`` is AVX-512 without bf16 (many cloud and Colab CPU
runtimes); ``DEFAULT`` is everything this CPU has (its model and bf16 units are printed first). Each kind runs in
its own process, since oneDNN reads the variable once, when it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ISAS = {"DEFAULT": "this CPU as it is", "AVX512_CORE": "AVX-512 without bf16", "AVX2": "AVX2 (most laptops)"}
COMBOS = (("fp32", "sdpa"), ("fp32", "explicit"), ("bf16", "explicit"), ("bf16", "sdpa"))


def measure_here(batch_size: int, warmup: int, steps: int) -> dict:
    """In this process: images/s of a training step for every format and kernel, and the auto choice."""
    from throughput import measure  # benchmarks/throughput.py: forward, backward and AdamW step, timed

    from vit_replication.model import Runtime, ViT, get_config
    from vit_replication.training.precision_choice import choose_precision

    cpu = torch.device("cpu")
    tic = time.perf_counter()
    choice = choose_precision(cpu)
    decided = time.perf_counter() - tic
    config = get_config("vit_cifar_cpu")
    rates = {}
    for precision, attention in COMBOS:
        torch.manual_seed(0)
        model = ViT(config, Runtime(attention=attention))
        rates[f"{precision} {attention}"] = measure(model, config, batch_size, cpu, warmup, steps, precision)["train"]
    return {"rates": rates, "auto": f"{choice.precision} {choice.attention}", "reason": choice.reason,
            "decision_seconds": decided}


def cpu_model() -> str:
    """The CPU's model name and its bf16 units, from /proc/cpuinfo."""
    from vit_replication.training.precision import cpuinfo_field

    flags = (cpuinfo_field("flags") or "").split()
    units = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{cpuinfo_field('model name') or '?'} ({', '.join(units) or 'no bf16 units'})"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--isas", nargs="+", choices=ISAS, default=list(ISAS))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(args.batch_size, args.warmup, args.steps)))
        return {}
    results = {}
    for isa in args.isas:
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if isa != "DEFAULT":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        command = [sys.executable, __file__, "--child", "--batch-size", str(args.batch_size), "--warmup",
                   str(args.warmup), "--steps", str(args.steps)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        results[isa] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"this CPU: {cpu_model()}; training images/s, vit_cifar_cpu, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads ({args.steps} timed steps after {args.warmup} warm-up):")
    print(f"{'oneDNN ISA':<13} {'like':<30} " + " ".join(f"{' '.join(c):>14}" for c in COMBOS)
          + "   bf16/fp32 (best kernels)   auto picks (decided in)")
    for isa, result in results.items():
        rates = result["rates"]
        best = {p: max(v for k, v in rates.items() if k.startswith(p)) for p in ("fp32", "bf16")}
        print(f"{isa:<13} {ISAS[isa]:<30} " + " ".join(f"{rates[' '.join(c)]:>14.0f}" for c in COMBOS)
              + f"   {best['bf16'] / best['fp32']:>24.2f}x   {result['auto']} ({result['decision_seconds']:.1f} s)")
    if args.out:
        Path(args.out).write_text(json.dumps({"cpu": cpu_model(), "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
