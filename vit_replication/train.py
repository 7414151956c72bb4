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
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset
from torch.utils.data.distributed import DistributedSampler

from .augment import DeviceLoader, batch_mixing, device_loaders
from .budget import plan_epochs
from .checkpoint import check_resumable, load_checkpoint, runtime_changes
from .data import (
    DATASETS,
    build_transform,
    describe_source,
    load_datasets,
    make_loader,
    normalization,
    set_transforms,
    subset,
)
from .distributed import cleanup_distributed, init_distributed
from .engine import fit, set_seed
from .errors import UserError, one_line
from .flops import describe, forward_flops, run_training_flops
from .model import CONFIGS, POOLS, Runtime, ViT, ViTConfig, config_dict, count_parameters, get_config
from .optim import training_setup
from .precision import PRECISIONS, cpuinfo_field
from .precision_choice import ATTENTIONS, choose_precision
from .report import save_figures, save_history, save_metrics

PRESETS: dict[str, dict] = {
    # The CPU recipe (README): a small ViT, data held as uint8 and augmented in memory (crop + flip only), the
    # precision that trains fastest on this CPU (--precision auto: bf16 with the written-out attention where the CPU
    # computes bf16 natively, fp32 with the fused kernel elsewhere), the first 70 % of the epochs at 16x16 pixels
    # (16 tokens instead of 64) with interpolated position embeddings, a quarter of the patch tokens dropped while
    # training, an evaluation every 5 epochs. Give it --time-budget or --epochs.
    "cifar10-cpu": dict(model="vit_cifar_cpu", loader="device", batch_size=256, lr=2e-3, warmup_epochs=1.0,
                        randaugment=False, low_res_size=16,
                        low_res_fraction=0.7, patch_dropout=0.25, eval_every=5, save_every=5, num_workers=2),
}
# The same recipe on a smaller ViT, for runs of a few minutes (the README's main job): on a CPU without fast bf16,
# the 1.2 M-parameter model gets too few epochs in 5 minutes (README, "What a reader's CPU gets").
PRESETS["quick-cpu"] = PRESETS["cifar10-cpu"] | dict(model="vit_cifar_tiny", lr=3e-3)
# The default --drop-path per model: 0.1 in the from-scratch CIFAR-10 recipes of these two, 0 for any other model.
DROP_PATH: dict[str, float] = {"vit_cifar": 0.1, "vit_s_cifar": 0.1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vit_replication.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="a named recipe: its settings become the defaults, and options given override them")
    p.add_argument("--dataset", choices=DATASETS, default="synthetic", help="default: synthetic (offline)")
    p.add_argument("--data-dir", default="data", help="download folder, or the ImageFolder root (train/, test/)")
    p.add_argument("--model", choices=list(CONFIGS), default="vit_cifar")
    p.add_argument("--image-size", type=int, default=None, help="default: the model config's")
    for name, help_text in (("patch-size", "P"), ("hidden-dim", "D"), ("num-layers", "L"), ("num-heads", "k"),
                            ("mlp-dim", "MLP width")):
        p.add_argument(f"--{name}", type=int, default=None, help=f"{help_text}; default: the model config's")
    p.add_argument("--resize", action="store_true", help="resize/random-resized-crop images of other sizes")
    p.add_argument("--randaugment", dest="randaugment", action="store_true", default=True,
                   help="RandAugment(2, 9) on training images (the default, except in --preset cifar10-cpu)")
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
    p.add_argument("--drop-path", type=float, default=None,
                   help="largest stochastic-depth rate (at the last layer); default: 0.1 for vit_cifar and "
                        "vit_s_cifar, else 0")
    p.add_argument("--pool", choices=POOLS, default=None,
                   help="cls: the class token (Eq. 4); gap: the mean of the patch tokens; default: the config's")
    p.add_argument("--patch-dropout", type=float, default=0.0, metavar="P",
                   help="drop this share of each image's patch tokens while training (0: off)")
    p.add_argument("--low-res-size", type=int, default=None, metavar="PIXELS",
                   help="train the first --low-res-fraction of the epochs on images resized to this size, with the "
                        "position embeddings interpolated in 2D (paper Sec. 3.2); needs --loader device")
    p.add_argument("--low-res-fraction", type=float, default=0.5, metavar="F",
                   help="share of the epochs trained at --low-res-size (default 0.5)")
    p.add_argument("--attention", choices=ATTENTIONS, default="auto",
                   help="sdpa: PyTorch's fused kernel; explicit: Eqs. 5-8 written out (faster for bf16 on a CPU); "
                        "auto (default): explicit for bf16 on a CPU, sdpa otherwise")
    p.add_argument("--eval-every", type=int, default=1, metavar="K",
                   help="evaluate on the test set every K epochs (and after the last)")
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
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default): bf16 on GPUs of compute capability >= 8.0, fp16 with loss scaling below; on "
                        "a CPU, the faster of bf16 and fp32 as timed on it in a few seconds before training")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true",
                   help="keep the model in channels-last memory format (its one 4-D weight is the Conv2d patch "
                        "projection; PyTorch converts the images to match)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--out", default="runs/default")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--save-every", type=int, default=1, metavar="N",
                   help="write the checkpoint every N epochs (and after the last)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    preset = p.parse_known_args(argv)[0].preset
    if preset:
        p.set_defaults(**PRESETS[preset])
    args = p.parse_args(argv)
    args.command = "python -m vit_replication.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    return args


POSITIVE = ("epochs", "batch_size", "train_size", "test_size", "save_every", "eval_every", "low_res_size")
NON_NEGATIVE = ("weight_decay", "warmup_epochs", "grad_clip", "mixup", "cutmix", "num_workers", "randaugment_groups")
FRACTIONS = ("label_smoothing", "patch_dropout", "drop_path")  # in [0, 1)


def check_args(args: argparse.Namespace) -> None:
    """Every option checked before any work, each failure one line that names the option."""
    for name in POSITIVE:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    for name in NON_NEGATIVE:
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for name in FRACTIONS:
        if getattr(args, name) is not None and not 0 <= getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(args, name)}")
    if not args.lr > 0:
        raise UserError(f"--lr must be > 0, got {args.lr}")
    if not 0 <= args.low_res_fraction <= 1:
        raise UserError(f"--low-res-fraction must be in [0, 1], got {args.low_res_fraction}")
    if args.time_budget is not None and not args.time_budget > 0:
        raise UserError(f"--time-budget must be > 0 seconds, got {args.time_budget:g}")
    if args.low_res_size and args.loader != "device":
        raise UserError("--low-res-size needs --loader device (it resizes batches held on the device)")
    if args.loader == "device" and (args.resize or args.dataset == "pizza_steak_sushi"):
        raise UserError("--loader device needs images of the model's size: it does not resize (drop --resize, "
                        "or use --loader dataloader)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: choose another --out")
    if args.resume and not (out / "checkpoint.pt").is_file():
        raise UserError(f"--resume: no checkpoint at {out / 'checkpoint.pt'}; run once without --resume first")


def model_config(args: argparse.Namespace, num_classes: int | None = None) -> ViTConfig:
    """The --model architecture with the options that override it."""
    names = ("image_size", "patch_size", "hidden_dim", "num_layers", "num_heads", "mlp_dim", "pool")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return get_config(args.model, **overrides)


def model_runtime(args: argparse.Namespace, attention: str) -> Runtime:
    """How the model runs in this recipe: ``attention`` (--attention as chosen), --patch-dropout, --drop-path
    (default ``DROP_PATH``), and other image sizes when --low-res-size trains at a lower resolution."""
    drop_path = DROP_PATH.get(args.model, 0.0) if args.drop_path is None else args.drop_path
    return Runtime(attention=attention, patch_dropout=args.patch_dropout, drop_path=drop_path,
                   dynamic_image_size=args.low_res_size is not None)


def build_data(args: argparse.Namespace, image_size: int):
    """(train set, test set, class names, (mean, std)): the subsets asked for, with the transforms of
    ``data.build_transform`` (none for ``--loader device``, which augments on the device)."""
    sizes = (args.train_size or 5000, args.test_size or 1000)  # synthetic set (also the offline fallback)
    train, test, classes = load_datasets(args.dataset, args.data_dir, image_size, None, None, True, sizes, args.seed)
    train, test = subset(train, args.train_size, args.seed), subset(test, args.test_size, args.seed)
    mean, std = normalization(args.dataset, train)
    if args.loader != "device":
        resize = args.resize or args.dataset == "pizza_steak_sushi"
        set_transforms(train, test, build_transform(image_size, True, mean, std, resize, args.randaugment),
                       build_transform(image_size, False, mean, std, resize))
    return train, test, classes, (mean, std)


def build_loaders(args: argparse.Namespace, train_set, test_set, stats, world_size: int, rank: int,
                  device: torch.device | str = "cpu"):
    """Loaders; under torchrun each process gets a shard of batch_size / world_size images per training step and
    every world_size-th test image."""
    if args.batch_size % world_size:
        raise UserError(f"--batch-size {args.batch_size} is not divisible by the {world_size} processes")
    if args.batch_size > len(train_set):
        raise UserError(f"--batch-size {args.batch_size} is larger than the {len(train_set)} training images: lower "
                        "it, or use a larger --train-size")
    if args.loader == "device":
        return device_loaders(train_set, test_set, args.batch_size // world_size, *stats, device, args.seed,
                              rank=rank, world_size=world_size,
                              randaugment_groups=args.randaugment_groups if args.randaugment else 0,
                              num_workers=args.num_workers)
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(train_set, world_size, rank, shuffle=True, seed=args.seed, drop_last=True)
    train_loader = make_loader(train_set, args.batch_size // world_size, True, args.num_workers, sampler, args.seed)
    test_shard = Subset(test_set, range(rank, len(test_set), world_size)) if world_size > 1 else test_set
    test_loader = make_loader(test_shard, 2 * args.batch_size // world_size, False, args.num_workers)
    return train_loader, test_loader


def whole_test_loader(args: argparse.Namespace, test_loader, test_set, stats):
    """The test loader over the whole test set (for the figures), when ``test_loader`` is one process's shard."""
    if isinstance(test_loader, DeviceLoader):
        return DeviceLoader(test_loader.images, test_loader.labels, 2 * args.batch_size, False, *stats)
    return make_loader(test_set, 2 * args.batch_size, False, args.num_workers)


def low_res_phase(args: argparse.Namespace, epochs: int, train_loader, log: bool = True):
    """``before_epoch`` for ``engine.fit``: the first ``--low-res-fraction`` of the ``epochs`` train on images of
    ``--low-res-size`` pixels (``DeviceLoader.image_size``), the rest at the model's own size; None without
    --low-res-size."""
    low = low_res_epochs(args, epochs)
    if not low:
        return None
    if log:
        print(f"the first {low} of {epochs} epochs at {args.low_res_size}x{args.low_res_size} pixels")

    def before_epoch(epoch: int) -> None:
        train_loader.image_size = args.low_res_size if epoch < low else None

    return before_epoch


def low_res_epochs(args: argparse.Namespace, epochs: int) -> int:
    """How many of ``epochs`` epochs, the first ones, train at --low-res-size: --low-res-fraction of them, rounded (0
    without --low-res-size). ``low_res_phase`` trains them so, and the reported training FLOPs count them so."""
    return round(args.low_res_fraction * epochs) if args.low_res_size else 0


def machine() -> str:
    """The hardware a run was made on, for its metrics: GPU name, or CPU model and the threads PyTorch used."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpu = cpuinfo_field("model name") or platform.processor() or platform.machine()
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> dict:
    """The command line: parse, train, evaluate, write the outputs; returns the final metrics. A user error ends the
    program with one line, ``error: ...``, and exit status 2 (--debug: the traceback instead)."""
    args = parse_args(argv)
    out, existed = Path(args.out), Path(args.out).exists()
    try:
        return run(args)[1]
    except UserError as err:
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no empty folder behind
        if args.debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args: argparse.Namespace) -> tuple[ViT, dict]:
    """The whole job for parsed ``args``; returns the trained model (of this process) and the metrics."""
    start = time.perf_counter()  # the wall time of the whole job: data, model, compilation, training, figures
    check_args(args)
    rank, world_size, local_rank = init_distributed()
    main_process, out = rank == 0, Path(args.out)
    device = torch.device(f"cuda:{local_rank}" if world_size > 1 and args.device == "cuda" else args.device)
    choice = choose_precision(device, args.precision, args.attention, config=model_config(args))  # timed on a CPU
    precision = choice.precision

    # build: data, model, loaders (nothing is written before all of them exist)
    runtime = model_runtime(args, choice.attention)
    train_set, test_set, classes, stats = build_data(args, model_config(args).image_size)
    config = model_config(args, num_classes=len(classes))
    set_seed(args.seed)
    model = ViT(config, runtime).to(device)  # the same seed, so the same initial weights in every process
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    resumed = load_checkpoint(out / "checkpoint.pt") if args.resume else None  # read once, before any work
    if resumed is not None:
        check_resumable(resumed, config_dict(config), out / "checkpoint.pt")
        args.runtime_changes = runtime_changes(resumed, config_dict(runtime))  # kept in checkpoint's and metrics' args
        if args.runtime_changes and main_process:
            print(f"--resume with other runtime settings: {'; '.join(args.runtime_changes)}")
    train_loader, test_loader = build_loaders(args, train_set, test_set, stats, world_size, rank, device)
    if main_process:
        print(f"{args.model}: {count_parameters(model):,} parameters, {describe(config)}, {config.num_patches} "
              f"patches of {config.patch_size}x{config.patch_size}; {len(train_set):,} train / {len(test_set):,} "
              f"test images ({describe_source(train_set)}), {len(classes)} classes; device {device}, {world_size} "
              f"process(es); {choice}")
    trained = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None) \
        if world_size > 1 else model
    trained = torch.compile(trained) if args.compile else trained
    mixing = batch_mixing(len(classes), args.mixup, args.cutmix)
    out.mkdir(parents=True, exist_ok=True)

    # plan: --epochs, or as many as fit in --time-budget (a resumed run keeps the plan of its first part)
    recipe = (args.warmup_epochs, args.weight_decay, args.label_smoothing)  # with --lr: optim.training_setup
    epochs = args.epochs
    if args.time_budget and args.resume:
        epochs = resumed.get("epochs_planned", args.epochs)
    elif args.time_budget:
        optimizer, _, loss_fn = training_setup(model, args.lr, 1, len(train_loader), *recipe)
        epochs = plan_epochs(trained, train_loader, test_loader, optimizer, loss_fn, device,
                             time_budget=args.time_budget, started=start, out=out, precision=precision,
                             grad_clip=args.grad_clip, batch_transform=mixing, low_res_size=args.low_res_size,
                             low_res_fraction=args.low_res_fraction, eval_every=args.eval_every,
                             save_every=args.save_every, compiled=args.compile)
        if main_process:
            print(f"--time-budget {args.time_budget:g} s: {epochs} epochs planned "
                  f"({time.perf_counter() - start:.0f} s spent on data, model and timing)")
    optimizer, scheduler, loss_fn = training_setup(model, args.lr, epochs, len(train_loader), *recipe)
    before_epoch = low_res_phase(args, epochs, train_loader, log=main_process)

    # fit
    tic = time.perf_counter()
    history = fit(
        trained, train_loader, test_loader, optimizer, scheduler, epochs, device, loss_fn, args.seed, precision,
        args.grad_clip, out / "checkpoint.pt", args.resume, args.progress and main_process, log=main_process,
        extra_state={"config": config_dict(config), "runtime": config_dict(runtime), "classes": classes,
                     "dataset": args.dataset, "data_dir": args.data_dir, "mean": stats[0], "std": stats[1],
                     "args": vars(args), "epochs_planned": epochs},
        write_checkpoints=main_process, batch_transform=mixing, checkpoint_every=args.save_every,
        eval_every=args.eval_every, before_epoch=before_epoch, rank=rank,
    )

    # report
    seconds = time.perf_counter() - tic
    metrics = {
        "test_acc": history["test_acc"][-1], "test_loss": history["test_loss"][-1],
        "best_test_acc": max(a for a in history["test_acc"] if a is not None), "epochs": len(history["epoch"]),
        "train_seconds_this_run": seconds, "train_seconds_all_epochs": sum(history["epoch_time"]),
        "parameters": count_parameters(model), "forward_flops_per_image": forward_flops(config),
        # the work of the training steps done: each epoch at its resolution, with patch dropout's kept tokens
        "training_flops": run_training_flops(config, len(train_loader) * args.batch_size, len(history["epoch"]),
                                             low_res_epochs(args, epochs), args.low_res_size, args.patch_dropout),
        "model": args.model, "config": config_dict(config), "runtime": config_dict(runtime), "dataset": args.dataset,
        "loaded": describe_source(train_set), "train_images": len(train_set), "test_images": len(test_set),
        "mean": stats[0], "std": stats[1], "precision": precision, "attention": choice.attention,
        "precision_reason": choice.reason, "device": str(device), "world_size": world_size,
        "command": args.command, "machine": machine(), "args": vars(args),
    }
    if main_process:
        save_history(history, out)
        figures_loader = whole_test_loader(args, test_loader, test_set, stats) if world_size > 1 else test_loader
        save_figures(model, history, figures_loader, classes, device, out, *stats, precision)
        metrics["wall_seconds_this_run"] = time.perf_counter() - start
        save_metrics(metrics, out)
        print(f"final test accuracy {metrics['test_acc']:.2%} after {metrics['epochs']} epochs "
              f"({metrics['train_seconds_all_epochs']:.0f} s of training, {metrics['wall_seconds_this_run']:.0f} s "
              f"for the whole run); outputs in {out}/")
    cleanup_distributed()
    return model, metrics


if __name__ == "__main__":
    main()
