"""How hard a dataset is without a ViT: a linear classifier (multinomial logistic regression) on the raw,
normalised pixels, trained to convergence with full-batch L-BFGS. The README puts its test accuracy beside the
ViT's on the main job's synthetic shapes, so that a high ViT accuracy there is known not to be a trivial task.

    python benchmarks/linear_baseline.py --dataset synthetic --train-size 10000 --test-size 1000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vit_replication.data import describe_source, sample_batch  # noqa: E402
from vit_replication.data.pipeline import build_data  # noqa: E402
from vit_replication.training.config import TrainConfig  # noqa: E402


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                          num_classes: int, weight_decay: float = 1e-4, steps: int = 200) -> tuple[float, float]:
    """(train accuracy, test accuracy) of logistic regression on flattened uint8 images, standardised per pixel
    with the training set's statistics."""
    train_x, test_x = train_x.flatten(1).float(), test_x.flatten(1).float()
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    model = nn.Linear(train_x.shape[1], num_classes)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=steps, history_size=20,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(train_x), train_y) + weight_decay * model.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return ((model(train_x).argmax(1) == train_y).float().mean().item(),
                (model(test_x).argmax(1) == test_y).float().mean().item())


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--out", default=None, help="write the result as JSON here")
    args = p.parse_args(argv)
    settings = TrainConfig(dataset=args.dataset, data_dir=args.data_dir, train_size=args.train_size,
                           test_size=args.test_size, loader="device")  # raw uint8 images, as the runs load them
    train, test, classes, _ = build_data(settings, 32)
    (train_x, train_y), (test_x, test_y) = sample_batch(train, len(train)), sample_batch(test, len(test))
    train_acc, test_acc = linear_probe_accuracy(train_x, train_y, test_x, test_y, len(classes))
    result = {"dataset": args.dataset, "loaded": describe_source(train), "train_images": len(train),
              "test_images": len(test),
              "linear_train_acc": train_acc, "linear_test_acc": test_acc}
    print(f"linear classifier on raw pixels, {args.dataset}: train {train_acc:.2%}, test {test_acc:.2%} "
          f"({len(train):,} / {len(test):,} images, {len(classes)} classes)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
