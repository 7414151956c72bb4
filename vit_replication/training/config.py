"""A training run's settings in one validated object, ``TrainConfig`` (airbench's one hyperparameter dict, as a
dataclass), the named presets that override it, and the small functions every caller builds a run with: the
architecture (``model_config``) and how the model runs in this recipe (``model_runtime``).

The command line parses into a ``TrainConfig`` (``train.parse_args``); notebooks 05 and 06 and the benchmarks build
one with ``preset``. Every field is checked in one place, ``TrainConfig.__post_init__``, and a bad value is a
``ConfigError`` that names the field (the command line shows it as its flag).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from ..data.datasets import DATASETS
from ..errors import UserError
from ..model.pooling import POOLS
from ..model.vit import ATTENTIONS, CONFIGS, Runtime, ViTConfig, get_config
from .mimetic import INITS
from .optim import OPTIMIZERS
from .precision import PRECISIONS
from .schedule import DECAYS

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
    drop_path: float | None = None  # largest stochastic-depth rate; None: DROP_PATH's default for the model
    init: str = "timm"  # initial weights: "timm" (truncated normal) or "mimetic" (mimetic.mimetic_init_)
    # the recipe
    epochs: int = 10
    time_budget: float | None = None  # seconds for the whole run, instead of epochs (schedule.Progress)
    batch_size: int = 128  # the global batch (split over torchrun's processes)
    lr: float = 1e-3  # peak learning rate
    decay: str = "cosine"  # after the warm-up: "cosine", "linear" to zero, or "wsd" (schedule.lr_factor)
    optimizer: str = "adamw"  # "adamw", or "muon": Muon on the encoder's weight matrices (muon.MuonAdamW)
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float = 1.0  # 0: no clipping
    mixup: float = 0.0  # MixUp Beta(alpha, alpha); 0: off
    cutmix: float = 0.0  # CutMix Beta(alpha, alpha); 0: off
    mixing_fraction: float = 1.0  # share of the run, the first, with MixUp/CutMix
    low_res_size: int | None = None  # train the first low_res_fraction of the run at this many pixels
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
FRACTIONS = ("label_smoothing", "patch_dropout", "drop_path")  # in [0, 1)
SHARES = ("low_res_fraction", "mixing_fraction")  # in [0, 1]
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


# The paper's recipe (Table 3) sized for CIFAR-10 and a small ViT (notebook 05): the class token's head (Eq. 4),
# timm's initialisation, AdamW with beta = (0.9, 0.999) and the peak learning rate of Table 3, one epoch of linear
# warm-up, cosine decay, clipping at 1; every image at 32x32 pixels. Give it time_budget or epochs.
PRESETS: dict[str, dict] = {
    "paper": dict(model="vit_cifar_tiny", pool="cls", loader="device", batch_size=256, lr=3e-3, warmup_epochs=1.0,
                  randaugment=False, eval_every=5, save_every=5, num_workers=2),
}
# The CPU recipe, taught and measured one change at a time in notebook 06 (benchmarks/recipe_ablation.py): a small
# ViT, the data held as uint8 and augmented in memory (crop and flip), the first part of the run at 16x16 pixels (16
# tokens instead of 64) with the position embeddings interpolated, a quarter of the patch tokens dropped while
# training. Give it time_budget or epochs.
PRESETS |= {
    "cifar10-cpu": dict(model="vit_cifar_cpu", loader="device", batch_size=256, lr=2e-3, warmup_epochs=1.0,
                        randaugment=False, low_res_size=16, low_res_fraction=0.7, patch_dropout=0.25, eval_every=5,
                        save_every=5, num_workers=2),
}
# the smallest ViT, for runs of a few minutes (the README's main job)
PRESETS["quick-cpu"] = PRESETS["cifar10-cpu"] | dict(model="vit_cifar_tiny", lr=3e-3)
# ten to thirty minutes on CIFAR-10: a short 32x32 phase at the end suffices (FixRes), a local start for the
# attention (mimetic), the mean of the patch tokens as the head's input (App. D.3), Muon, and the peak learning rate
# held until a final cool-down (wsd)
PRESETS["short-cpu"] = PRESETS["quick-cpu"] | dict(low_res_fraction=0.85, init="mimetic", pool="gap",
                                                   optimizer="muon", decay="wsd")
# about 150 minutes: a wider, deeper ViT, and MixUp/CutMix against overfitting for the first 90 % of the run
PRESETS["long-cpu"] = PRESETS["short-cpu"] | dict(model="vit_cifar_d96", mixup=0.8, cutmix=1.0, mixing_fraction=0.9)
# the default drop_path per model: 0.1 in the from-scratch CIFAR-10 recipes of these two, 0 for any other model
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
