"""Run by tests/test_distributed.py under torchrun: train, then save this process's weights as OUT/rank<r>.pt.

With TEST_STEP_SECONDS="train,eval" the run is timed on a ``conftest.StepClock`` of those seconds a forward pass,
(rank + 1) times slower on each later rank: the job's start, the budget and the progress all read it."""

import os
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import StepClock  # noqa: E402

from vit_replication import train  # noqa: E402
from vit_replication.training import budget  # noqa: E402

if __name__ == "__main__":
    rank = int(os.environ.get("RANK", 0))
    if "TEST_STEP_SECONDS" in os.environ:
        train_seconds, eval_seconds = ((rank + 1) * float(s) for s in os.environ["TEST_STEP_SECONDS"].split(","))
        clock = StepClock(train_seconds, eval_seconds)
        train.time = SimpleNamespace(perf_counter=clock)
        train.progress_for = partial(budget.progress_for, clock=clock)
        initialise = train.initialise
        train.initialise = lambda model, init: clock.hook(initialise(model, init))
    args = train.parse_args(sys.argv[1:])
    model, _ = train.run(args)
    torch.save(model.state_dict(), Path(args.out) / f"rank{rank}.pt")
