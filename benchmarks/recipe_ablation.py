"""The CPU recipe of notebook 06, one change at a time: from the paper's recipe (``--preset paper``, notebook 05) to
``--preset short-cpu``, each rung adding one change to the rung before, every rung trained for the same fixed
number of epochs with each seed. Writes the test accuracies and training times that notebook 06 prints
(``assets/recipe_ablation.json``).

    python benchmarks/recipe_ablation.py --data-dir data/cifar10-jpg        # about 25 minutes on a 2-core CPU
    python benchmarks/recipe_ablation.py --train-size 256 --test-size 128 --epochs 1 --out /tmp/a.json   # a check

Fixed epochs, not a time budget: at the same epochs a change that makes steps cheaper (16x16 images, patch dropout)
shows what it costs in accuracy and saves in time, and a change that makes steps better shows its gain alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.analysis.compare import comparison_loaders, train_seeds  # noqa: E402
from vit_replication.analysis.report import machine  # noqa: E402
from vit_replication.model import ViT  # noqa: E402
from vit_replication.training.config import model_config, preset  # noqa: E402
from vit_replication.training.precision_choice import choose_precision  # noqa: E402

# Each rung: its name and the settings it changes; the last rung is --preset short-cpu (tests check it).
LADDER: list[tuple[str, dict]] = [
    ("the paper's recipe", {}),
    ("+ 16x16 pixels for the first 85 %", dict(low_res_size=16, low_res_fraction=0.85)),
    ("+ patch dropout 0.25", dict(patch_dropout=0.25)),
    ("+ GAP head", dict(pool="gap")),
    ("+ mimetic start", dict(init="mimetic")),
    ("+ Muon", dict(optimizer="muon")),
    ("+ wsd schedule", dict(decay="wsd")),
]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="ImageFolder root with train/ and test/ (default: synthetic)")
    p.add_argument("--train-size", type=int, default=10_000, help="a fixed random subset of the training images")
    p.add_argument("--test-size", type=int, default=5_000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--rungs", type=int, default=len(LADDER), help="only the first RUNGS rungs (for a check)")
    p.add_argument("--out", default="assets/recipe_ablation.json")
    args = p.parse_args(argv)
    data = dict(dataset="imagefolder", data_dir=args.data_dir) if args.data_dir else dict(dataset="synthetic")
    device = torch.device("cpu")
    choice = choose_precision(device)
    recipe = preset("paper", **data, train_size=args.train_size, test_size=args.test_size, epochs=args.epochs,
                    batch_size=args.batch_size, eval_every=args.epochs, attention=choice.attention, progress=False)
    train_loader, test_loader, classes = comparison_loaders(recipe, device)
    rungs = []
    for name, change in LADDER[:args.rungs]:
        recipe = replace(recipe, **change)
        config = model_config(recipe, num_classes=len(classes))
        build = lambda config=config: ViT(config)  # noqa: E731
        runs = train_seeds(name, build, (train_loader, test_loader), recipe, device, args.seeds, choice.precision)
        rungs.append({"change": name, "settings": change, "test_acc": [run["test_acc"] for run in runs],
                      "seconds": [sum(run["history"]["epoch_time"]) for run in runs]})
    result = {"cpu": machine(), "precision": choice.precision, "attention": choice.attention,
              "dataset": f"{train_loader.images.shape[0]:,} training and {test_loader.images.shape[0]:,} test images "
                         f"({args.data_dir or 'synthetic shapes'})",
              "epochs": args.epochs, "seeds": args.seeds, "model": recipe.model,
              "command": "python benchmarks/recipe_ablation.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "rungs": rungs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
