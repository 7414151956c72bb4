"""How many augmented training images per second each input pipeline delivers, with no model attached: the
DataLoader (PIL decode, crop, flip, RandAugment, ToTensor, normalise in worker processes) against the
``DeviceLoader`` (the whole uint8 set preloaded once; crop, flip and grouped RandAugment as tensor ops on the
device), the latter also with MixUp/CutMix. A GPU trains faster than its input arrives when its training
images/s (``benchmarks/throughput.py``) exceed what the pipeline delivers.

    python benchmarks/data_pipeline.py --data-dir data/cifar10-jpg          # an ImageFolder copy of CIFAR-10
    python benchmarks/data_pipeline.py --batches 3 --train-size 2048        # the synthetic set: a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import islice
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.data import CIFAR10_MEAN, CIFAR10_STD, build_transform, make_loader  # noqa: E402
from vit_replication.data.augment import Augment, DeviceLoader, batch_mixing, preload  # noqa: E402
from vit_replication.data.pipeline import build_data  # noqa: E402
from vit_replication.training.config import TrainConfig  # noqa: E402


def images_per_second(loader, batches: int, device: torch.device, transform=None) -> float:
    """Augmented images/s over ``batches`` batches, after one warm-up batch (worker start-up)."""
    iterator = iter(loader)
    next(iterator)
    tic, seen = time.perf_counter(), 0
    for images, labels in islice(iterator, batches):
        images, labels = images.to(device), labels.to(device)
        if transform is not None:
            images, labels = transform(images, labels)
        seen += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return seen / (time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="ImageFolder root with train/ (default: the synthetic set)")
    p.add_argument("--train-size", type=int, default=None, help="a random subset of the training set")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--batches", type=int, default=10, help="timed batches per pipeline")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to time")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    name = "imagefolder" if args.data_dir else "synthetic"
    settings = TrainConfig(dataset=name, data_dir=args.data_dir or "data", train_size=args.train_size,
                           test_size=16, loader="device")  # raw images: each pipeline below adds its own transform
    train, _, _, _ = build_data(settings, 32)
    results = {"dataset": name, "train_images": len(train), "batch_size": args.batch_size, "device": str(device),
               "images_per_s": {}}
    rates = results["images_per_s"]
    base = getattr(train, "dataset", train)  # under a subset
    base.transform = build_transform(32, train=True)  # the DataLoader pipeline decodes and augments on the CPU
    for workers in args.workers:
        loader = make_loader(train, args.batch_size, True, workers)
        rates[f"dataloader_{workers}_workers"] = images_per_second(loader, args.batches, device)
    base.transform = None  # preload takes the raw images
    for workers in args.workers:
        tic = time.perf_counter()
        images, labels = preload(train, device, workers)
        results[f"preload_seconds_{workers}_workers"] = time.perf_counter() - tic
    device_loader = DeviceLoader(images, labels, args.batch_size, True, (CIFAR10_MEAN, CIFAR10_STD),
                                 Augment(randaugment_groups=16))
    rates["device_loader"] = images_per_second(device_loader, args.batches, device)
    rates["device_loader_mixup_cutmix"] = images_per_second(device_loader, args.batches, device,
                                                            batch_mixing(10, 0.8, 1.0))
    preloads = ", ".join(f"{results[f'preload_seconds_{w}_workers']:.1f} s with {w} workers" for w in args.workers)
    print(f"{name}: {len(train):,} training images, batch {args.batch_size}, device {device}; preloading took "
          f"{preloads}")
    for label, rate in rates.items():
        print(f"  {label:<28} {rate:>10,.0f} augmented images/s")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
