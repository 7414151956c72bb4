"""A training run's settings in one validated object, ``TrainConfig`` (airbench's one hyperparameter dict, as a
dataclass), the named presets that override it, and the small functions every caller builds a run with: the
architecture (``model_config``), how the model runs in this recipe (``model_runtime``) and the epochs of each phase.

The command line parses into a ``TrainConfig`` (``train.parse_args``); notebook 05 and ``benchmarks/recipes.py``
build one with ``preset``. Every field is checked in one place, ``TrainConfig.__post_init__``, and a bad value is a
``ConfigError`` that names the field (the command line shows it as its flag).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from .data import DATASETS
from .errors import UserError
from .mimetic import INITS
from .model import ATTENTIONS, CONFIGS, Runtime, ViTConfig, get_config
from .optim import DECAYS, OPTIMIZERS, decay_start, warmup_steps
from .pooling import POOLS
from .precision import PRECISIONS

LOADERS = ("dataloader", "device")


class ConfigError(UserError):
    """A ``TrainConfig`` value that cannot run, naming its field(s); ``with_flags`` words it for the command line."""

    def __init__(self, message: str, *names: str):
        super().__init__(message)
        self.names = names

    def with_flags(self) -> str:
        """The message with every field name written as its command-line flag (batch_size -> --batch-size)."""
        message = str(self)
        for name in self.names:
            message = re.sub(rf"(?<![\w-]){name}\b", "--" + name.replace("_", "-"), message)
        return message


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run is given: data, architecture choice, recipe, run control. Defaults are the
    command line's; ``PRESETS`` override them."""

    # data
    dataset: str = "synthetic"  # one of data.DATASETS; synthetic works offline
    data_dir: str = "data"  # download folder, or the ImageFolder root (train/, test/)
    train_size: int | None = None  # a fixed random subset of the training set (None: all of it)
    test_size: int | None = None
    resize: bool = False  # resize / random-resized-crop images of other sizes (DataLoader pipeline)
    loader: str = "dataloader"  # "device": the whole dataset held on the device, augmented there
    num_workers: int = 0  # DataLoader workers (with loader "device": for decoding the images once)
    randaugment: bool = True  # RandAugment(2, 9) on training images
    randaugment_groups: int = 16  # loader "device": chunks of a batch that draw their own RandAugment ops
    # architecture: a named config of model.CONFIGS, with any field overridden
    model: str = "vit_cifar"
    image_size: int | None = None
    patch_size: int | None = None
    hidden_dim: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    mlp_dim: int | None = None
    pool: str | None = None  # "cls" (Eq. 4) or "gap"; None: the config's
    # how the model runs (model.Runtime)
    attention: str = "auto"  # "sdpa", "explicit", or "auto": the faster as timed (precision_choice)
    patch_dropout: float = 0.0  # share of each image's patch tokens dropped while training
    patch_dropout_fraction: float = 1.0  # share of the epochs, the first ones, trained with patch dropout
    drop_path: float | None = None  # largest stochastic-depth rate; None: DROP_PATH's default for the model
    init: str = "timm"  # initial weights: "timm" (truncated normal) or "mimetic" (mimetic.mimetic_init_)
    # the recipe
    epochs: int = 10
    time_budget: float | None = None  # seconds for the whole run: as many epochs as fit (budget.plan_epochs)
    batch_size: int = 128  # the global batch (split over torchrun's processes)
    lr: float = 1e-3  # peak learning rate
    decay: str = "cosine"  # after the warm-up: "cosine", "linear" to zero, or "wsd" (optim.DECAYS)
    optimizer: str = "adamw"  # "adamw", or "muon": Muon on the encoder's weight matrices (muon.MuonAdamW)
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # 0: no clipping
    mixup: float = 0.0  # MixUp Beta(alpha, alpha); 0: off
    cutmix: float = 0.0  # CutMix Beta(alpha, alpha); 0: off
    mixing_fraction: float = 1.0  # share of the epochs, the first ones, with MixUp/CutMix
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated instead of them; 0: off
    low_res_size: int | None = None  # train the first low_res_fraction of the epochs at this many pixels
    low_res_fraction: float = 0.5
    seed: int = 0
    # where and how it runs
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    precision: str = "auto"  # bf16, fp16, fp32, or auto: precision_choice.choose_precision
    compile: bool = False
    channels_last: bool = False
    eval_every: int = 1
    save_every: int = 1
    progress: bool = True
    out: str = "runs/default"
    resume: bool = False

    def __post_init__(self):
        check(self)

    def to_dict(self) -> dict:
        """The fields as a plain dict (stored in checkpoints and metrics.json)."""
        return asdict(self)


POSITIVE = ("epochs", "batch_size", "train_size", "test_size", "save_every", "eval_every", "low_res_size")
NON_NEGATIVE = ("weight_decay", "warmup_epochs", "grad_clip", "mixup", "cutmix", "num_workers", "randaugment_groups")
FRACTIONS = ("label_smoothing", "patch_dropout", "drop_path", "ema")  # in [0, 1)
SHARES = ("low_res_fraction", "mixing_fraction", "patch_dropout_fraction")  # in [0, 1]
CHOICES = {"dataset": DATASETS, "model": tuple(CONFIGS), "pool": POOLS, "attention": ("auto", *ATTENTIONS),
           "decay": DECAYS, "optimizer": OPTIMIZERS, "init": INITS, "loader": LOADERS, "precision": PRECISIONS}


def check(config: TrainConfig) -> None:
    """Every field checked before any work; each failure a ``ConfigError`` that names the field."""
    for name, choices in CHOICES.items():
        value = getattr(config, name)
        if value is not None and value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}", name)
    for name in POSITIVE:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}", name)
    for name in NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(config, name)}", name)
    for name in FRACTIONS:
        if getattr(config, name) is not None and not 0 <= getattr(config, name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(config, name)}", name)
    for name in SHARES:
        if not 0 <= getattr(config, name) <= 1:
            raise ConfigError(f"{name} must be in [0, 1], got {getattr(config, name)}", name)
    if not config.lr > 0:
        raise ConfigError(f"lr must be > 0, got {config.lr}", "lr")
    if config.time_budget is not None and not config.time_budget > 0:
        raise ConfigError(f"time_budget must be > 0 seconds, got {config.time_budget:g}", "time_budget")
    if config.low_res_size and config.loader != "device":
        raise ConfigError("low_res_size needs loader device (it resizes batches held on the device)",
                          "low_res_size", "loader")
    if config.loader == "device" and (config.resize or config.dataset == "pizza_steak_sushi"):
        raise ConfigError("loader device needs images of the model's size: it does not resize (drop resize, or use "
                          "loader dataloader)", "loader", "resize")


def check_paths(config: TrainConfig) -> None:
    """The run's folder can be written, and a resumed run has its checkpoint (a ``ConfigError`` otherwise)."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out {out} is a file, not a folder: choose another out", "out")
    if config.resume and not (out / "checkpoint.pt").is_file():
        raise ConfigError(f"resume: no checkpoint at {out / 'checkpoint.pt'}; run once without resume first",
                          "resume")


# The CPU recipe (README): a small ViT, data held as uint8 and augmented in memory (crop + flip only), the precision
# that trains fastest on this CPU (precision "auto"), the first 70 % of the epochs at 16x16 pixels (16 tokens instead
# of 64) with interpolated position embeddings, a quarter of the patch tokens dropped while training, an evaluation
# every 5 epochs. Give it time_budget or epochs.
PRESETS: dict[str, dict] = {
    "cifar10-cpu": dict(model="vit_cifar_cpu", loader="device", batch_size=256, lr=2e-3, warmup_epochs=1.0,
                        randaugment=False, low_res_size=16, low_res_fraction=0.7, patch_dropout=0.25, eval_every=5,
                        save_every=5, num_workers=2),
}
# The same recipe on a smaller ViT, for runs of a few minutes (the README's main job): on a CPU without fast bf16,
# the 1.2 M-parameter model gets too few epochs in 5 minutes (README, "What a reader's CPU gets").
PRESETS["quick-cpu"] = PRESETS["cifar10-cpu"] | dict(model="vit_cifar_tiny", lr=3e-3)
# Notebook 05's 10 minutes on CIFAR-10: the small ViT with 85 % of the epochs at 16x16 pixels (a 16x16 epoch costs a
# third of a 32x32 one here, and a short 32x32 phase at the end suffices, as FixRes found). Measured one change at a
# time in 10-minute runs (README, "Accuracy per CPU-minute"). No EMA of the weights: with so short a 32x32 phase its
# average would reach back into the 16x16 phase's weights (the one run with it is not a clean test: README).
# The attention starts local (mimetic.mimetic_init_): in runs this short the model underfits, and the mimetic start
# gains there; in a 100-epoch run on 10,000 images it fitted the training set faster and did not gain (README).
# The head reads the mean of the patch tokens (pool="gap", the paper's App. D.3) instead of the class token: +1.5 and
# +2.3 points in 30-epoch runs with two seeds (README); the class token stays in the sequence.
# The encoder's weight matrices take Muon's orthogonalised steps (muon.MuonAdamW; the rest stays on AdamW with the
# same learning rate): +3.9 and +4.2 points at a fixed 30 epochs (learning rates 3e-3 and 6e-3, README), at no
# measurable cost per step where the run trains in bf16 (30-minute benchmark: 3,051 against 3,059 images/s) and about
# 15 % slower 16x16 epochs on a CPU without bf16, where it orthogonalises in fp32 (README).
# The learning rate holds its peak and falls to zero along a line over the last 20 % of the steps (decay="wsd")
# instead of a cosine: the cosine leaves the last 15 % of the epochs, the 32x32 ones, almost nothing (over the last 4
# of 30 epochs it averages 1.6 % of the peak). At a fixed 30 epochs, two seeds, fp32 (README): a line from the
# warm-up to zero gained +1.71 and +1.63 points over the cosine, and wsd +1.56 and +2.08 over the line (81.04 and
# 81.53 % against 79.48 and 79.45 %); wsd stands lower while it holds the peak and gains in its cool-down.
PRESETS["short-cpu"] = PRESETS["quick-cpu"] | dict(low_res_fraction=0.85, init="mimetic", pool="gap",
                                                   optimizer="muon", decay="wsd")
# short-cpu's recipe for about 150 minutes: a wider, deeper model than the tiny one (more epochs no longer pay as
# much as more capacity), and MixUp/CutMix for the first 90 % of the epochs, which curbed overfitting in 100-epoch
# runs on 10,000 images (+2.4 points, three seeds, p about 0.09). One 150-minute run on a CPU without bf16: 86.89 %
# (135 epochs), on the bf16 CPU 87.66 % (263 epochs; README); both changes came together, not measured one at a time
# at this length.
PRESETS["long-cpu"] = PRESETS["short-cpu"] | dict(model="vit_cifar_d96", mixup=0.8, cutmix=1.0, mixing_fraction=0.9)
# The default drop_path per model: 0.1 in the from-scratch CIFAR-10 recipes of these two, 0 for any other model.
DROP_PATH: dict[str, float] = {"vit_cifar": 0.1, "vit_s_cifar": 0.1}


def preset(name: str | None = None, **overrides) -> TrainConfig:
    """The ``TrainConfig`` of preset ``name`` (None: the defaults) with ``overrides``, checked."""
    if name is not None and name not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}", "preset")
    unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}")
    return TrainConfig(**(PRESETS[name] if name else {}) | overrides)


def model_config(config: TrainConfig, num_classes: int | None = None) -> ViTConfig:
    """The architecture: ``config.model`` with the fields that override it (and ``num_classes``)."""
    names = ("image_size", "patch_size", "hidden_dim", "num_layers", "num_heads", "mlp_dim", "pool")
    overrides = {name: getattr(config, name) for name in names if getattr(config, name) is not None}
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return get_config(config.model, **overrides)


def model_runtime(config: TrainConfig, attention: str) -> Runtime:
    """How the model runs in this recipe: ``attention`` (as chosen), patch dropout, drop path (default
    ``DROP_PATH``), and other image sizes when a low-resolution phase trains at another size."""
    drop_path = DROP_PATH.get(config.model, 0.0) if config.drop_path is None else config.drop_path
    return Runtime(attention=attention, patch_dropout=config.patch_dropout, drop_path=drop_path,
                   dynamic_image_size=config.low_res_size is not None)


def phase_epochs(share: float, epochs: int) -> int:
    """How many of ``epochs`` epochs, the first ones, a phase of ``share`` of the run takes (rounded)."""
    return round(share * epochs)


def low_res_epochs(config: TrainConfig, epochs: int) -> int:
    """How many of ``epochs`` epochs, the first ones, train at ``low_res_size`` (0 without it); the training loop
    (``phases``) and the reported training FLOPs both count them so."""
    return phase_epochs(config.low_res_fraction, epochs) if config.low_res_size else 0



def dropout_epochs(config: TrainConfig, epochs: int) -> int:
    """How many of ``epochs`` epochs, the first ones, train with patch dropout (all of them without it: there is
    nothing to switch off); ``epoch_schedule`` and the reported training FLOPs both count them so."""
    return phase_epochs(config.patch_dropout_fraction, epochs) if config.patch_dropout else epochs


def epoch_phases(config: TrainConfig, epochs: int, epoch: int) -> tuple[bool, bool, bool]:
    """Whether epoch ``epoch`` (from 0) of a run of ``epochs`` trains at low resolution, with patch dropout and with
    MixUp/CutMix (``epoch_schedule``'s phases)."""
    mixing = bool(config.mixup or config.cutmix) and epoch < phase_epochs(config.mixing_fraction, epochs)
    return epoch < low_res_epochs(config, epochs), epoch < dropout_epochs(config, epochs), mixing


def length_free_epochs(config: TrainConfig, epochs: int, steps_per_epoch: int) -> int:
    """How many first epochs of a run of ``epochs`` train at learning rates that do not depend on the run's length:
    those that end by ``optim.decay_start`` (the warm-up, and for the "wsd" decay the peak after it)."""
    warmup = warmup_steps(config.warmup_epochs, epochs, steps_per_epoch)
    return decay_start(warmup, epochs * steps_per_epoch, config.decay) // steps_per_epoch


def trained_alike(config: TrainConfig, epochs: int, other: int, done: int, steps_per_epoch: int) -> bool:
    """Whether the first ``done`` epochs train alike in a run of ``epochs`` and one of ``other`` epochs: in the same
    phases and at the same learning rates, which hold through the ``length_free_epochs`` of both when their warm-ups
    are as long. Then a run may change its plan from one to the other after ``done`` epochs
    (``budget.fit_planned``) and train as if it had had the second from the start."""
    def warmup(total: int) -> int:
        return warmup_steps(config.warmup_epochs, total, steps_per_epoch)

    return (warmup(epochs) == warmup(other)
            and done <= min(length_free_epochs(config, total, steps_per_epoch) for total in (epochs, other))
            and all(epoch_phases(config, epochs, e) == epoch_phases(config, other, e) for e in range(done)))


def epoch_schedule(config: TrainConfig, epochs: int, *, model, train_loader, mixing=None,
                   log: bool = True) -> Callable[[int], None] | None:
    """``before_epoch`` for ``engine.fit``: the recipe's phases by epoch. The first ``low_res_epochs`` train on
    images of ``low_res_size`` pixels (``DeviceLoader.image_size``), the rest at the model's own size; patch dropout
    (``model.configure``) for the first ``patch_dropout_fraction`` of the epochs; MixUp/CutMix (``mixing.active``)
    for the first ``mixing_fraction``. None when the run has a single phase."""
    low = low_res_epochs(config, epochs)
    dropout = dropout_epochs(config, epochs)
    mixed = phase_epochs(config.mixing_fraction, epochs) if mixing is not None else epochs
    if not low and dropout == epochs and mixed == epochs:
        return None
    if log:
        size = config.low_res_size
        parts = [f"the first {low} of {epochs} epochs at {size}x{size} pixels"] * bool(low)
        parts += [f"patch dropout {config.patch_dropout:g} for the first {dropout}"] * (dropout < epochs)
        parts += [f"MixUp/CutMix for the first {mixed}"] * (mixed < epochs)
        print("; ".join(parts))

    def before_epoch(epoch: int) -> None:  # the phases trained_alike compares: epoch_phases decides both
        low_res, dropped, mixed_now = epoch_phases(config, epochs, epoch)
        if low:
            train_loader.image_size = config.low_res_size if low_res else None
        if dropout < epochs:
            model.configure(patch_dropout=config.patch_dropout if dropped else 0.0)
        if mixing is not None:  # built only when config.mixup or config.cutmix (augment.batch_mixing)
            mixing.active = mixed_now

    return before_epoch
