"""Run by tests/test_distributed.py under torchrun: train, then save this process's weights as OUT/rank<r>.pt."""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication import budget, train  # noqa: E402

if __name__ == "__main__":
    if "TEST_STEP_SECONDS" in os.environ:  # injected step times: "train,eval" seconds, slower on rank 1
        train_step, eval_step = (float(s) for s in os.environ["TEST_STEP_SECONDS"].split(","))
        slower = 1 + int(os.environ.get("RANK", 0))
        budget.time_steps = lambda *args, **kwargs: (slower * train_step, slower * eval_step)
        budget.FIGURES_SECONDS = 0.0
    args = train.parse_args(sys.argv[1:])
    replan = budget.replanned_epochs

    def recorded(plan, config, epoch_seconds, spent, *args):  # what the re-plan was given, for the test to compare
        epochs = replan(plan, config, epoch_seconds, spent, *args)
        record = {"epoch_seconds": epoch_seconds, "spent": spent, "epochs": epochs}
        (Path(config.out) / f"replan{os.environ.get('RANK', 0)}.json").write_text(json.dumps(record))
        return epochs

    budget.replanned_epochs = recorded
    model, _ = train.run(args)
    torch.save(model.state_dict(), Path(args.out) / f"rank{os.environ.get('RANK', 0)}.pt")
