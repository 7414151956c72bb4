"""Run by tests/test_distributed.py under torchrun: train, then save this process's weights as OUT/rank<r>.pt."""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication import train  # noqa: E402

if __name__ == "__main__":
    args = train.parse_args(sys.argv[1:])
    model, _ = train.run(args)
    torch.save(model.state_dict(), Path(args.out) / f"rank{os.environ.get('RANK', 0)}.pt")
