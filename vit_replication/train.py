"""Train and evaluate a ViT from the command line, readable top to bottom (nanoGPT's train.py is the model).

    python -m vit_replication.train --dataset synthetic --epochs 5 --out runs/synthetic
    python -m vit_replication.train --dataset cifar10 --data-dir data --epochs 100 --out runs/cifar10
    python -m vit_replication.train --dataset imagefolder --data-dir data/cifar10-jpg --out runs/cifar10-jpg
    python -m vit_replication.train ... --resume          # continue from OUT/checkpoint.pt
    python -m vit_replication.train ... --time-budget 600  # as many epochs as fit in 10 minutes, all included
    torchrun --nproc_per_node=8 -m vit_replication.train ...   # DistributedDataParallel, one process per GPU

--batch-size is the global batch: under torchrun each of the N processes takes batch_size / N images per step, so
the same arguments give the same optimisation on 1 or N GPUs.

Writes to --out: history.json and history.csv (per epoch), metrics.json (final), checkpoint.pt, and the figures
curves.png, predictions.png, confusion.png, attention_heads.png, rollout.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset
from torch.utils.data.distributed import DistributedSampler

from . import attention_maps, visualize
from .augment import DeviceLoader, batch_mixing, device_loaders, normalize
from .data import CIFAR10_MEAN, CIFAR10_STD, DATASETS, build_transform, load_datasets, make_loader, sample_batch, subset
from .distributed import all_reduce_max, cleanup_distributed, init_distributed
from .engine import (
    build_optimizer,
    confusion_matrix,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    set_seed,
    time_steps,
    unwrap,
    warmup_cosine,
)
from .flops import describe, forward_flops, training_flops
from .model import CONFIGS, ViT, ViTConfig, config_dict, count_parameters, get_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vit_replication.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="default: synthetic (offline)")
    p.add_argument("--data-dir", default="data", help="download folder, or the ImageFolder root (train/, test/)")
    p.add_argument("--model", choices=list(CONFIGS), default="vit_cifar")
    p.add_argument("--image-size", type=int, default=None, help="default: the model config's")
    p.add_argument("--resize", action="store_true", help="resize/random-resized-crop images of other sizes")
    p.add_argument("--no-randaugment", dest="randaugment", action="store_false")
    p.add_argument("--train-size", type=int, default=None, help="use a random subset of the training set")
    p.add_argument("--test-size", type=int, default=None, help="use a random subset of the test set")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="instead of --epochs: as many epochs as fit in this wall time for the whole run, planned "
                        "from timed training and evaluation steps (compilation included)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--drop-path", type=float, default=None, help="default: the model config's")
    p.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA", help="MixUp Beta(alpha, alpha); 0: off")
    p.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA", help="CutMix Beta(alpha, alpha); 0: off")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--loader", choices=("dataloader", "device"), default="dataloader",
                   help="device: hold the whole dataset on the device and augment batches there (fast for 32x32 "
                        "data on a GPU; no --resize)")
    p.add_argument("--randaugment-groups", type=int, default=16,
                   help="--loader device: chunks of a batch that draw their own RandAugment ops (default 16)")
    p.add_argument("--num-workers", type=int, default=0,
                   help="DataLoader worker processes (with --loader device: for decoding the images once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="disable bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true",
                   help="keep the model in channels-last memory format (its one 4-D weight is the Conv2d patch "
                        "projection; PyTorch converts the images to match)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", default="runs/default")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--save-every", type=int, default=1, metavar="N",
                   help="write the checkpoint every N epochs (and after the last)")
    return p.parse_args(argv)


def build_data(args: argparse.Namespace, image_size: int):
    """Train/test datasets (transforms applied, none for ``--loader device``), class names."""
    resize = args.resize or args.dataset == "pizza_steak_sushi"
    train_tf = build_transform(image_size, True, resize=resize, randaugment=args.randaugment)
    test_tf = build_transform(image_size, False, resize=resize)
    if args.loader == "device":
        if resize:
            raise ValueError("--loader device needs images of the model's size: it does not resize (drop --resize, "
                             "or use --loader dataloader)")
        train_tf = test_tf = None
    sizes = (args.train_size or 5000, args.test_size or 1000)  # synthetic set (also the offline fallback)
    train, test, classes = load_datasets(args.dataset, args.data_dir, image_size, train_tf, test_tf, True, sizes,
                                         args.seed)
    return subset(train, args.train_size, args.seed), subset(test, args.test_size, args.seed), classes


def save_history(history: dict[str, list[float]], out: Path) -> None:
    (out / "history.json").write_text(json.dumps(history, indent=1))
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(history)
        writer.writerows(zip(*history.values()))


def save_figures(model: ViT, history: dict, test_loader, classes: list[str], device: torch.device, out: Path,
                 amp: bool = True) -> None:
    """Curves, a prediction grid, the confusion matrix, last-layer head attention and rollout maps."""
    stats = {"mean": CIFAR10_MEAN, "std": CIFAR10_STD}
    figures = {"curves": visualize.plot_history(history)}
    probs, targets = predict(model, test_loader, device, amp)
    cm = confusion_matrix(probs.argmax(-1), targets, len(classes))
    figures["confusion"] = visualize.plot_confusion_matrix(cm, classes)
    if isinstance(test_loader, DeviceLoader):  # 12 random test images, the same ones whichever loader is used
        index = torch.randperm(len(test_loader.images), generator=torch.Generator().manual_seed(0))[:12]
        images = normalize(test_loader.images[index.to(test_loader.images.device)], **stats).cpu()
        labels = test_loader.labels[index.to(test_loader.labels.device)].cpu()
    else:
        images, labels = sample_batch(test_loader.dataset, 12)
    model.eval()
    with torch.no_grad():
        logits, attentions = model(images.to(device), return_attention=True)
    figures["predictions"] = visualize.plot_predictions(images, labels, logits.float().softmax(-1).cpu(), classes,
                                                        **stats)
    heads = attention_maps.cls_attention(attentions[-1].cpu())
    figures["attention_heads"] = visualize.plot_attention_heads(images[0], heads[0], **stats)
    maps = attention_maps.rollout_map([a.cpu() for a in attentions])
    figures["rollout"] = visualize.plot_rollout(images[:8], maps[:8], [classes[i] for i in labels[:8]], **stats)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)


def build_loaders(args: argparse.Namespace, train_set, test_set, world_size: int, rank: int,
                  device: torch.device | str = "cpu"):
    """Loaders; under torchrun each process gets a shard of batch_size / world_size images per training step and
    every world_size-th test image."""
    if args.batch_size % world_size:
        raise ValueError(f"--batch-size {args.batch_size} is not divisible by the {world_size} processes")
    if args.loader == "device":
        return device_loaders(train_set, test_set, args.batch_size // world_size, CIFAR10_MEAN, CIFAR10_STD, device,
                              args.seed, rank=rank, world_size=world_size,
                              randaugment_groups=args.randaugment_groups if args.randaugment else 0,
                              num_workers=args.num_workers)
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=args.seed, drop_last=True)
    train_loader = make_loader(train_set, args.batch_size // world_size, True, args.num_workers, sampler, args.seed)
    test_shard = Subset(test_set, range(rank, len(test_set), world_size)) if world_size > 1 else test_set
    test_loader = make_loader(test_shard, 2 * args.batch_size // world_size, False, args.num_workers)
    return train_loader, test_loader


def whole_test_loader(args: argparse.Namespace, test_loader, test_set):
    """The test loader over the whole test set (for the figures), when ``test_loader`` is one process's shard."""
    if isinstance(test_loader, DeviceLoader):
        return DeviceLoader(test_loader.images, test_loader.labels, 2 * args.batch_size, False, CIFAR10_MEAN,
                            CIFAR10_STD)
    return make_loader(test_set, 2 * args.batch_size, False, args.num_workers)


FIGURES_SECONDS = 10.0  # kept free at the end of a --time-budget run for plotting the figures


def plan_epochs(args: argparse.Namespace, model: nn.Module, train_loader, test_loader, optimizer, loss_fn,
                device: torch.device, batch_transform, started: float, out: Path) -> int:
    """The number of epochs that fit in ``args.time_budget`` seconds counted from ``started``: time training and
    evaluation steps (``engine.time_steps``, which leaves model and optimizer as they were) and a checkpoint write,
    then divide what is left, after the final evaluation and the figures, by the time of one epoch."""
    train_step, eval_step = time_steps(model, train_loader, test_loader, optimizer, loss_fn, device, args.amp,
                                       args.grad_clip, batch_transform)
    tic = time.perf_counter()
    scratch = out / f"timing-{os.getpid()}.tmp"  # one file per process under torchrun
    save_checkpoint(scratch, model=unwrap(model).state_dict(), optimizer=optimizer.state_dict())
    scratch.unlink()
    seconds = torch.tensor([train_step, eval_step, time.perf_counter() - tic, time.perf_counter() - started],
                           device=device)
    # the slowest process sets the pace, and every process plans the same number of epochs
    train_step, eval_step, save, spent = all_reduce_max(seconds).tolist()
    evaluation = eval_step * len(test_loader)
    epoch = train_step * len(train_loader) + evaluation + save / args.save_every
    left = args.time_budget - spent - evaluation - FIGURES_SECONDS
    epochs = int(left // epoch)
    if epochs < 1:
        raise ValueError(f"--time-budget {args.time_budget:g} s leaves {left:.0f} s for training, less than one epoch "
                         f"(about {epoch:.1f} s): raise the budget, or use a smaller model or --train-size")
    return epochs


def main(argv: list[str] | None = None) -> dict:
    """Parse the command line, train, evaluate, write the outputs; returns the final metrics."""
    return run(parse_args(argv))[1]


def run(args: argparse.Namespace) -> tuple[ViT, dict]:
    """The whole job for parsed ``args``; returns the trained model (of this process) and the metrics."""
    start = time.perf_counter()  # the wall time of the whole job: data, model, compilation, training, figures
    if args.save_every < 1:
        raise ValueError(f"--save-every must be >= 1, got {args.save_every}")
    rank, world_size, local_rank = init_distributed()
    main_process = rank == 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(f"cuda:{local_rank}" if world_size > 1 and args.device == "cuda" else args.device)
    set_seed(args.seed)
    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    if args.drop_path is not None:
        overrides["drop_path"] = args.drop_path
    image_size = get_config(args.model, **overrides).image_size
    train_set, test_set, classes = build_data(args, image_size)
    config = get_config(args.model, num_classes=len(classes), **overrides)
    model = ViT(config).to(device)  # same seed, so the same initial weights in every process
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if main_process:
        print(f"{args.model}: {count_parameters(model):,} parameters, {describe(config)}, {config.num_patches} "
              f"patches of {config.patch_size}x{config.patch_size}; {len(train_set):,} train / {len(test_set):,} "
              f"test images, {len(classes)} classes; device {device}, {world_size} process(es)")
    train_loader, test_loader = build_loaders(args, train_set, test_set, world_size, rank, device)
    optimizer = build_optimizer(model, args.lr, args.weight_decay)
    trained = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None) \
        if world_size > 1 else model
    trained = torch.compile(trained) if args.compile else trained
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    mixing = batch_mixing(len(classes), args.mixup, args.cutmix)
    epochs = args.epochs
    if args.time_budget and args.resume:  # the schedule was planned for the epochs the first run chose
        epochs = load_checkpoint(out / "checkpoint.pt").get("epochs_planned", args.epochs)
    elif args.time_budget:
        epochs = plan_epochs(args, trained, train_loader, test_loader, optimizer, loss_fn, device, mixing, start, out)
        if main_process:
            print(f"--time-budget {args.time_budget:g} s: {epochs} epochs planned "
                  f"({time.perf_counter() - start:.0f} s spent on data, model and timing)")
    steps = epochs * len(train_loader)
    scheduler = warmup_cosine(optimizer, min(int(args.warmup_epochs * len(train_loader)), steps), steps)
    tic = time.perf_counter()
    history = fit(
        trained, train_loader, test_loader, optimizer, scheduler, epochs, device, loss_fn, args.seed, args.amp,
        args.grad_clip, out / "checkpoint.pt", args.resume, args.progress and main_process, log=main_process,
        extra_state={"config": config_dict(config), "classes": classes, "dataset": args.dataset,
                     "data_dir": args.data_dir, "args": vars(args), "epochs_planned": epochs},
        write_checkpoints=main_process, batch_transform=mixing, checkpoint_every=args.save_every,
    )
    seconds = time.perf_counter() - tic
    metrics = {
        "test_acc": history["test_acc"][-1], "test_loss": history["test_loss"][-1],
        "best_test_acc": max(history["test_acc"]), "epochs": len(history["epoch"]),
        "train_seconds_this_run": seconds, "train_seconds_all_epochs": sum(history["epoch_time"]),
        "parameters": count_parameters(model), "forward_flops_per_image": forward_flops(config),
        "training_flops": training_flops(config, len(train_loader) * args.batch_size * len(history["epoch"])),
        "model": args.model, "dataset": args.dataset,
        "device": str(device), "world_size": world_size, "args": vars(args),
    }
    if main_process:
        save_history(history, out)
        figures_loader = whole_test_loader(args, test_loader, test_set) if world_size > 1 else test_loader
        save_figures(model, history, figures_loader, classes, device, out, args.amp)
        metrics["wall_seconds_this_run"] = time.perf_counter() - start
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        print(f"final test accuracy {metrics['test_acc']:.2%} after {metrics['epochs']} epochs "
              f"({metrics['train_seconds_all_epochs']:.0f} s of training, {metrics['wall_seconds_this_run']:.0f} s "
              f"for the whole run); outputs in {out}/")
    cleanup_distributed()
    return model, metrics


def load_trained(run_dir: str | Path, quick_dir: str | Path = "runs/quick") -> tuple[ViT, dict]:
    """The model and checkpoint that notebook 05 or this script saved in ``run_dir``. Without one, says so in one
    line and uses the small synthetic-shapes model in ``quick_dir``, training it (2 epochs) if it is not there yet,
    so that the notebooks that study a trained model (06, 09) still run end to end."""
    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        quick = Path(quick_dir) / "checkpoint.pt"
        print(f"No checkpoint at {path}: run notebook 05 first. "
              + (f"Using the quick synthetic-shapes model in {quick}." if quick.is_file() else
                 "Training a quick model on synthetic shapes."))
        if not quick.is_file():
            main(["--dataset", "synthetic", "--epochs", "2", "--train-size", "1000", "--test-size", "200",
                  "--no-progress", "--out", str(quick_dir)])
        path = quick
    checkpoint = load_checkpoint(path)
    model = ViT(ViTConfig(**checkpoint["config"])).eval()
    model.load_state_dict(checkpoint["model"])
    last = checkpoint["history"]["test_acc"][-1]
    print(f"loaded {path}: {checkpoint['epoch']} epochs, last test accuracy {last:.2%}")
    return model, checkpoint


if __name__ == "__main__":
    main()
