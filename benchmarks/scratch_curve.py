"""Notebook 10's from-scratch arm, trained until it plateaus: the architecture of the shipped CIFAR-10 model, newly
initialised, trained by ``transfer.transfer_recipe("from scratch", ...)`` (the settings of the CPU recipe
``--preset cifar10-cpu``) on the 10,000 synthetic shapes of notebook 10's largest label budget in batches of 256,
and evaluated on its 1,000 test shapes after every epoch, once per seed. Too long for the notebook (about 7-8
minutes a seed on a 2-core CPU with bf16), so the notebook shows the curves stored by this command beside its own
short runs:

    python benchmarks/scratch_curve.py --out assets/transfer_scratch_curve.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.analysis import transfer  # noqa: E402
from vit_replication.analysis.report import machine  # noqa: E402
from vit_replication.data.synthetic import SyntheticShapes  # noqa: E402
from vit_replication.training.precision import PRECISIONS  # noqa: E402
from vit_replication.training.precision_choice import choose_precision  # noqa: E402
from vit_replication.weights.trained import load_trained  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2340, help="training steps of each seed (39 an epoch: 60 epochs)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-size", type=int, default=10000, help="notebook 10's TARGET_TRAIN")
    p.add_argument("--test-size", type=int, default=1000, help="notebook 10's TARGET_TEST")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: as training chooses it")
    p.add_argument("--out", default=None, help="write the curves as JSON here")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    choice = choose_precision(device, args.precision)
    backbone, checkpoint = load_trained(None)  # the architecture and normalisation of notebook 10's backbone
    shapes = [SyntheticShapes(args.train_size, 32, seed=0), SyntheticShapes(args.test_size, 32, split="test", seed=0)]
    train, test = ((data.images, torch.tensor(data.targets)) for data in shapes)
    task = transfer.Task(train, test, len(shapes[0].classes), checkpoint["mean"], checkpoint["std"])
    recipes = [transfer.transfer_recipe("from scratch", args.steps, args.train_size, args.batch_size, seed=seed,
                                        attention=choice.attention, eval_every=1) for seed in args.seeds]
    print(f"from scratch: {args.steps:,} steps of {args.batch_size} on {args.train_size:,} shapes, seeds {args.seeds}; "
          f"{choice}")
    curves = transfer.scratch_curves(backbone, task, recipes, device, choice.precision)
    recipe = recipes[0]  # the seeds' recipes differ only in their seed
    result = {"command": "python benchmarks/scratch_curve.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "model": asdict(backbone.config), "train_images": args.train_size, "test_images": args.test_size,
              "batch_size": recipe.batch_size, "seeds": args.seeds, "recipe": recipe.to_dict(), "device": str(device),
              "precision": choice.precision, "attention": choice.attention, "machine": machine(),
              **curves}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
