"""Train and evaluate a ViT from the command line, readable top to bottom (nanoGPT's train.py is the model).

    python -m vit_replication.train --dataset synthetic --epochs 5 --out runs/synthetic
    python -m vit_replication.train --dataset cifar10 --data-dir data --epochs 100 --out runs/cifar10
    python -m vit_replication.train --dataset imagefolder --data-dir data/cifar10-jpg --out runs/cifar10-jpg
    python -m vit_replication.train ... --resume          # continue from OUT/checkpoint.pt
    python -m vit_replication.train ... --time-budget 600  # 10 minutes for everything, training until they are spent
    torchrun --nproc_per_node=8 -m vit_replication.train ...   # DistributedDataParallel, one process per GPU

--batch-size is the global batch: under torchrun each of the N processes takes batch_size / N images per step, so
the same arguments give the same optimisation on 1 or N GPUs.

Writes to --out: history.json and history.csv (per epoch), metrics.json (final), checkpoint.pt, and the figures
curves.png, predictions.png, confusion.png, attention_heads.png, rollout.png.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from .analysis.flops import describe, forward_flops, run_training_flops
from .analysis.report import machine, save_figures, save_history, save_metrics
from .data.pipeline import run_data, whole_test_loader
from .distributed import cleanup_distributed, init_distributed
from .errors import UserError, one_line
from .model.vit import ViT, config_dict, count_parameters
from .training.budget import progress_for
from .training.config import (
    CHOICES,
    PRESETS,
    ConfigError,
    TrainConfig,
    check_paths,
    model_config,
    model_runtime,
)
from .training.loop import Run, fit, set_seed
from .training.mimetic import initialise
from .training.precision_choice import choose_precision
from .training.schedule import WSD_COOLDOWN
from .weights.checkpoint import load_checkpoint
from .weights.trained import check_resumable, runtime_changes

HELP = {  # the command line's words for TrainConfig's fields (recipe.py documents each)
    "preset": "a named recipe: its settings become the defaults, and options given override them",
    "dataset": "default: synthetic (offline)",
    "data_dir": "download folder, or the ImageFolder root (train/, test/)",
    "image_size": "default: the model config's", "patch_size": "P; default: the model config's",
    "hidden_dim": "D; default: the model config's", "num_layers": "L; default: the model config's",
    "num_heads": "k; default: the model config's", "mlp_dim": "MLP width; default: the model config's",
    "resize": "resize/random-resized-crop images of other sizes",
    "randaugment": "RandAugment(2, 9) on training images (the default, except in the CPU presets)",
    "train_size": "use a random subset of the training set", "test_size": "use a random subset of the test set",
    "time_budget": "instead of --epochs: seconds for the whole run; the learning rate and the phases follow the "
                   "share of it spent, and training stops when it is spent",
    "lr": "peak learning rate",
    "decay": "the learning rate after the warm-up: cosine, or linear to zero, or wsd (held, then linear to zero over "
             f"the last {100 * WSD_COOLDOWN:.0f} %% of the run)",
    "optimizer": "adamw, or muon: Muon's orthogonalised steps on the encoder's weight matrices, AdamW on the rest",
    "drop_path": "largest stochastic-depth rate (at the last layer); default: 0.1 for vit_cifar and vit_s_cifar, "
                 "else 0",
    "pool": "cls: the class token (Eq. 4); gap: the mean of the patch tokens; default: the config's",
    "patch_dropout": "drop this share of each image's patch tokens while training (0: off)",
    "low_res_size": "train the first --low-res-fraction of the run on images resized to this size, with the "
                    "position embeddings interpolated in 2D (paper Sec. 3.2); needs --loader device",
    "low_res_fraction": "share of the run (of its epochs, or of its time budget) at --low-res-size (default 0.5)",
    "attention": "sdpa: PyTorch's fused kernel; explicit: Eqs. 5-8 written out; auto (default): the faster of the "
                 "two as timed on this machine",
    "eval_every": "evaluate on the test set every K epochs (and after the last)",
    "mixup": "MixUp Beta(alpha, alpha); 0: off", "cutmix": "CutMix Beta(alpha, alpha); 0: off",
    "mixing_fraction": "share of the run, the first, with MixUp/CutMix (default 1: all)",
    "init": "initial weights: timm (truncated normal, the default) or mimetic (attention initialised as in "
            "Trockman & Kolter 2023, 2D sine-cosine values for the learned position embeddings)",
    "loader": "device: hold the whole dataset on the device and augment batches there (no --resize)",
    "randaugment_groups": "--loader device: chunks of a batch that draw their own RandAugment ops (default 16)",
    "num_workers": "DataLoader worker processes (with --loader device: for decoding the images once)",
    "precision": "auto (default): bf16 on GPUs of compute capability >= 8.0, fp16 with loss scaling below; on a "
                 "CPU, the faster of bf16 and fp32 as timed on it in a few seconds before training",
    "compile": "torch.compile the model",
    "channels_last": "keep the model in channels-last memory format (its one 4-D weight is the Conv2d patch "
                     "projection; PyTorch converts the images to match)",
    "progress": "show progress bars (--no-progress: none)",
    "resume": "continue from OUT/checkpoint.pt",
    "save_every": "write the checkpoint every N epochs (and after the last)",
}
METAVARS = {"time_budget": "SECONDS", "eval_every": "K", "patch_dropout": "P", "low_res_size": "PIXELS",
            "low_res_fraction": "F", "mixup": "ALPHA", "cutmix": "ALPHA", "save_every": "N"}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The command line as a checked ``TrainConfig``: every field is a flag (batch_size: --batch-size), a --preset
    sets the defaults, and options given override them. A bad value is a ``ConfigError`` naming the field."""
    return config_from_args(parser(argv).parse_args(argv))


def parser(argv: list[str] | None = None, defaults: bool = True) -> argparse.ArgumentParser:
    """The argument parser, with the defaults of the --preset that ``argv`` names (if any); without ``defaults``
    it returns only the options given."""
    p = argparse.ArgumentParser(prog="python -m vit_replication.train", description=__doc__.split("\n\n")[0],
                                argument_default=None if defaults else argparse.SUPPRESS)
    p.add_argument("--preset", choices=PRESETS, help=HELP["preset"])
    base = TrainConfig()
    for f in fields(TrainConfig):
        flag, default = "--" + f.name.replace("_", "-"), getattr(base, f.name)
        switch, default = isinstance(default, bool), default if defaults else argparse.SUPPRESS
        if switch:
            p.add_argument(flag, dest=f.name, action="store_true", default=default, help=HELP.get(f.name))
            p.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=argparse.SUPPRESS)
            continue
        kind = {"int": int, "float": float}.get(f.type.split(" | ")[0], str)
        p.add_argument(flag, type=kind, default=default, choices=CHOICES.get(f.name), metavar=METAVARS.get(f.name),
                       help=HELP.get(f.name))
    p.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    preset = getattr(p.parse_known_args(argv)[0], "preset", None)
    if preset and defaults:
        p.set_defaults(**PRESETS[preset])
    return p


def given_options(argv: list[str]) -> dict:
    """The ``TrainConfig`` fields that the options in ``argv`` set, and only those (no defaults)."""
    given = vars(parser(argv, defaults=False).parse_args(argv))
    return {f.name: given[f.name] for f in fields(TrainConfig) if f.name in given}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed arguments (without the command line's own --preset and --debug)."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def main(argv: list[str] | None = None) -> dict:
    """The command line: parse, train, evaluate, write the outputs; returns the final metrics. A user error ends the
    program with one line, ``error: ...``, naming the option, and exit status 2 (--debug: the traceback instead)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    out = None
    try:
        config = parse_args(argv)
        out = Path(config.out)
        existed = out.exists()
        return run(config, command="python -m vit_replication.train " + shlex.join(argv))[1]
    except UserError as err:
        if out is not None and not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no empty folder behind
        if debug:
            raise
        message = err.with_flags() if isinstance(err, ConfigError) else one_line(err)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def run(config: TrainConfig, command: str = "") -> tuple[ViT, dict]:
    """The whole job for ``config``: build, fit, report. Returns the trained model (of this process) and the
    metrics; ``command`` is recorded with them."""
    started = time.perf_counter()  # the wall time of the whole job: data, model, compilation, training, figures
    check_paths(config)
    rank, world_size, local_rank = init_distributed()
    out = Path(config.out)
    device = torch.device(f"cuda:{local_rank}" if world_size > 1 and config.device == "cuda" else config.device)

    # build: data, model, optimiser (nothing is written before all of them exist)
    choice = choose_precision(device, config.precision, config.attention, config=model_config(config))
    data = run_data(config, model_config(config).image_size, device, rank, world_size)
    architecture = model_config(config, num_classes=len(data.classes))
    runtime = model_runtime(config, choice.attention)
    set_seed(config.seed)  # the same seed, so the same initial weights in every process
    model = initialise(ViT(architecture, runtime), config.init).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    resumed = load_checkpoint(out / "checkpoint.pt") if config.resume else None  # read once, before any work
    changes = resumable(resumed, architecture, runtime, out / "checkpoint.pt") if resumed is not None else []
    trained = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None) \
        if world_size > 1 else model
    trained = torch.compile(trained) if config.compile else trained
    run = Run.create(config, trained, (data.train_loader, data.test_loader), device, choice.precision,
                     len(data.classes))
    run.rank, run.log, run.checkpoint = rank, rank == 0, out / "checkpoint.pt"
    run.stored = {"config": config_dict(architecture), "runtime": config_dict(runtime), "classes": data.classes,
                  "dataset": config.dataset, "data_dir": config.data_dir, "mean": data.mean, "std": data.std,
                  "args": config.to_dict() | {"runtime_changes": changes}}
    if rank == 0:
        print(f"{config.model}: {count_parameters(model):,} parameters, {describe(architecture)}, "
              f"{architecture.num_patches} patches of {architecture.patch_size}x{architecture.patch_size}; "
              f"{len(data.train_set):,} train / {len(data.test_set):,} test images ({data.describe()}), "
              f"{len(data.classes)} classes; device {device}, {world_size} process(es); {choice}")
    out.mkdir(parents=True, exist_ok=True)

    # fit: --epochs, or until --time-budget is spent
    progress = progress_for(run, started, resumed)
    tic = time.perf_counter()
    history = fit(run, progress, resumed)

    # report
    metrics = {
        "test_acc": history["test_acc"][-1], "test_loss": history["test_loss"][-1],
        "best_test_acc": max(a for a in history["test_acc"] if a is not None), "epochs": len(history["epoch"]),
        "steps": sum(history["steps"]), "train_seconds_this_run": time.perf_counter() - tic,
        "train_seconds_all_epochs": sum(history["epoch_time"]), "budget": progress.describe(),
        "parameters": count_parameters(model), "forward_flops_per_image": forward_flops(architecture),
        "training_flops": run_training_flops(architecture, history, config.batch_size, config.patch_dropout,
                                             config.low_res_size),
        "model": config.model, "config": config_dict(architecture), "runtime": config_dict(runtime),
        "dataset": config.dataset, "loaded": data.describe(), "train_images": len(data.train_set),
        "test_images": len(data.test_set), "mean": data.mean, "std": data.std, "precision": choice.precision,
        "attention": choice.attention, "precision_reason": choice.reason, "device": str(device),
        "world_size": world_size, "command": command, "machine": machine(), "args": run.stored["args"],
    }
    if rank == 0:
        save_history(history, out)
        figures_loader = whole_test_loader(config, data) if world_size > 1 else data.test_loader
        save_figures(model, history, figures_loader, data.classes, device, out, data.stats, choice.precision)
        metrics["wall_seconds_this_run"] = time.perf_counter() - started
        save_metrics(metrics, out)
        print(f"final test accuracy {metrics['test_acc']:.2%} after {metrics['epochs']} epochs "
              f"({metrics['train_seconds_all_epochs']:.0f} s of training, {metrics['wall_seconds_this_run']:.0f} s "
              f"for the whole run); outputs in {out}/")
    cleanup_distributed()
    return model, metrics


def resumable(resumed: dict, architecture, runtime, path: Path) -> list[str]:
    """The runtime settings a resumed run changes ('name: stored -> requested'); another architecture is a
    one-line error (``check_resumable``)."""
    check_resumable(resumed, config_dict(architecture), path)
    changes = runtime_changes(resumed, config_dict(runtime))
    if changes:
        print(f"--resume with other runtime settings: {'; '.join(changes)}")
    return changes


if __name__ == "__main__":
    main()
