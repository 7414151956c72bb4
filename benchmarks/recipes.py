"""Training recipes side by side in one run, each with the same wall-clock budget (``--time-budget``): test
accuracy, training images/s and the ratio of each recipe's accuracy to a baseline's (the first one's by default).
The README's comparison of the CPU recipe with notebook 05's, and its 30 minutes of the ViT beside the CNN, were made
with it.

    python benchmarks/recipes.py --data-dir data/cifar10-jpg --time-budget 1800 --recipes short-cpu cnn \
        --baseline short-cpu --precision bf16 --attention explicit

    python benchmarks/recipes.py --data-dir data/cifar10-jpg --time-budget 1800 --recipes cifar10-cpu notebook05 \
        --baseline notebook05
    python benchmarks/recipes.py --time-budget 60 --train-size 512 --test-size 256     # the synthetic set: a check

Each recipe is a ``training.config.TrainConfig`` (a preset, or the settings below, with the shared ones) run by
``train.run`` in-process, as ``python -m vit_replication.train`` runs it, one after the other on the same machine;
each writes to OUT/<recipe>/. An ablation is NAME="OPTIONS": the command line's options of that recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication import train  # noqa: E402
from vit_replication.training.config import PRESETS, TrainConfig  # noqa: E402
from vit_replication.variants.cnn import train_cnn  # noqa: E402

RECIPES: dict[str, dict] = {
    # notebook 05 as it ran on the CPU before the CPU recipe: vit_cifar (D=256), PIL DataLoader with RandAugment,
    # batch 128, peak lr 1e-3 x 128 / 512, fp32, fused attention, an evaluation every epoch
    "notebook05": dict(model="vit_cifar", batch_size=128, lr=2.5e-4, warmup_epochs=1, precision="fp32",
                       attention="sdpa"),
} | {name: PRESETS[name] for name in PRESETS} | {
    # the CNN beside the ViT (vit_replication.variants.cnn): the CPU recipe's data, loaders, optimiser and budget
    "cnn": dict(loader="device", batch_size=256, lr=2e-3, warmup_epochs=1.0, randaugment=False, eval_every=5,
                save_every=5, num_workers=2),
}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), help=f"names from {', '.join(RECIPES)}, or "
                   "NAME=ARGS with the recipe's arguments in one quoted string (for ablations)")
    p.add_argument("--time-budget", type=float, required=True, help="seconds for each recipe's whole run")
    p.add_argument("--data-dir", default=None, help="ImageFolder root with train/ and test/ (default: synthetic)")
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--baseline", default=None,
                   help="the recipe the accuracy ratios are taken against (default: the first)")
    p.add_argument("--out", default="runs/recipes")
    args, shared = p.parse_known_args(argv)
    data = dict(dataset="imagefolder", data_dir=args.data_dir) if args.data_dir else dict(dataset="synthetic")
    data |= {name: getattr(args, name) for name in ("train_size", "test_size") if getattr(args, name) is not None}
    results = []
    for recipe in args.recipes:
        name, _, extra = recipe.partition("=")
        common = data | dict(time_budget=args.time_budget, progress=False, out=str(Path(args.out) / name))
        if extra:  # an ablation: the command line's options of this recipe, then the shared ones
            settings = train.parse_args(extra.split() + shared)
            settings = replace(settings, **common)
        else:
            settings = TrainConfig(**RECIPES[name] | train.given_options(shared) | common)
        command = f"benchmarks/recipes.py {name}"
        _, metrics = train_cnn(settings, command) if name == "cnn" else train.run(settings, command)
        history = json.loads((Path(settings.out) / "history.json").read_text())
        images = sum(history["steps"]) * settings.batch_size  # the last epoch of a budget may be partial
        results.append({"recipe": name, "settings": settings.to_dict(), "test_acc": metrics["test_acc"],
                        "epochs": metrics["epochs"], "wall_seconds": metrics["wall_seconds_this_run"],
                        "train_images_per_s": images / metrics["train_seconds_all_epochs"]})
    base = next(r for r in results if r["recipe"] == (args.baseline or results[0]["recipe"]))
    print(f"\n{'recipe':<22}{'test acc':>10}{'epochs':>8}{'img/s':>8}{'wall s':>8}{'acc ratio':>11}")
    for r in results:
        r["acc_ratio_to_baseline"] = r["test_acc"] / base["test_acc"] if base["test_acc"] else float("nan")
        print(f"{r['recipe']:<22}{r['test_acc']:>10.2%}{r['epochs']:>8}{r['train_images_per_s']:>8.0f}"
              f"{r['wall_seconds']:>8.0f}{r['acc_ratio_to_baseline']:>11.2f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "recipes.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
