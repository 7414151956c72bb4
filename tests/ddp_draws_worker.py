"""Run by tests/test_distributed.py under torchrun: what each process draws in one epoch (its shard of the shuffled
order, its augmented first batch, a draw of the global RNG that MixUp and drop-path use), saved as OUT/draws<r>.pt."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.data import synthetic_sets  # noqa: E402
from vit_replication.data.augment import Augment, DeviceLoader, preload  # noqa: E402
from vit_replication.distributed import cleanup_distributed, init_distributed  # noqa: E402
from vit_replication.training.loop import reseed  # noqa: E402

if __name__ == "__main__":
    out, seed, epoch = Path(sys.argv[1]), 3, 2
    rank, world_size, _ = init_distributed()
    train, test = synthetic_sets(32, None, None, sizes=(64, 8))
    loader = DeviceLoader(*preload(train), 8, True, ((0.5,) * 3, (0.25,) * 3), Augment(randaugment_groups=2),
                          seed=seed, shard=(rank, world_size))
    reseed(loader, seed, epoch, rank)
    order = loader.epoch_order()
    reseed(loader, seed, epoch, rank)
    images, labels = next(iter(loader))
    torch.save({"order": order, "images": images, "labels": labels, "global": torch.rand(4)}, out / f"draws{rank}.pt")
    cleanup_distributed()
