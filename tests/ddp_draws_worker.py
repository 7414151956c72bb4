"""Run by tests/test_distributed.py under torchrun: what each process draws in one epoch (its shard of the shuffled
order, its augmented first batch, a draw of the global RNG that MixUp and drop-path use), saved as OUT/draws<r>.pt."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.augment import device_loaders  # noqa: E402
from vit_replication.data import synthetic  # noqa: E402
from vit_replication.distributed import cleanup_distributed, init_distributed  # noqa: E402
from vit_replication.engine import reseed  # noqa: E402

if __name__ == "__main__":
    out, seed, epoch = Path(sys.argv[1]), 3, 2
    rank, world_size, _ = init_distributed()
    train, test = synthetic(32, None, None, sizes=(64, 8))
    loader, _ = device_loaders(train, test, 8, (0.5,) * 3, (0.25,) * 3, seed=seed, rank=rank, world_size=world_size,
                               randaugment_groups=2)
    reseed(loader, seed, epoch, rank)
    order = loader.epoch_order()
    reseed(loader, seed, epoch, rank)
    images, labels = next(iter(loader))
    torch.save({"order": order, "images": images, "labels": labels, "global": torch.rand(4)}, out / f"draws{rank}.pt")
    cleanup_distributed()
