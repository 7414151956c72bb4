"""Transfer learning with a pre-trained ViT: a new zero-initialised head on a frozen encoder (notebook 11).

"For fine-tuning, we remove the pre-trained prediction head and attach a zero-initialized D x K feedforward layer,
where K is the number of downstream classes" (Sec. 3.2). With the encoder frozen, the features y = LN(z_L^0) of
Eq. 4 never change, so they are computed once and only the head is trained on them: a linear probe, as fast as
training a logistic regression. ``transfer_runs`` puts the probe beside full fine-tuning and training from scratch
at the same budget of steps (notebook 11, on the CPU-trained model shipped in assets/).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ..data.augment import DeviceLoader, normalize
from ..data.datasets import make_loader
from ..download import DownloadError
from ..model.vit import ViT, create_vit
from ..training.config import TrainConfig
from ..training.variant import train_variant
from ..weights.convert import load_torchvision_pretrained

METHODS = ("linear probe", "fine-tuning", "from scratch")


def pretrained_backbone(name: str = "vit_b_16", weights: str = "IMAGENET1K_V1") -> tuple[ViT, bool]:
    """torchvision's pre-trained ViT converted to ours, and True; offline, one line saying so and a randomly
    initialised ViT of the same architecture, and False."""
    try:
        return load_torchvision_pretrained(name, weights), True
    except DownloadError as err:
        print(f"{err}. Using random weights instead: the code runs the same, the accuracy is not a transfer result.")
        return create_vit(name), False


def zero_head(hidden_dim: int, num_classes: int) -> nn.Linear:
    """The "zero-initialized D x K feedforward layer" of Sec. 3.2."""
    head = nn.Linear(hidden_dim, num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


def new_head(model: ViT, num_classes: int) -> nn.Linear:
    """Replace ``model.head`` with ``zero_head(D, num_classes)`` and return it."""
    model.head = zero_head(model.config.hidden_dim, num_classes)
    return model.head


@torch.no_grad()
def extract_features(model: ViT, images: torch.Tensor, device: torch.device, batch_size: int = 32) -> torch.Tensor:
    """y = LN(z_L^0) (Eq. 4, before the head; with ``pool="gap"`` the LN of the mean patch token) for every image of
    ``images`` [N, C, H, W]; returns [N, D] on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model.eval().to(device)
    features = []
    for i in range(0, images.shape[0], batch_size):
        tokens = model.forward_features(images[i:i + batch_size].to(device))  # z_L, all tokens
        features.append(model.forward_head(tokens, pre_logits=True).float().cpu())  # y = LN(pool(z_L))
    return torch.cat(features)


def fine_tuning_copy(model: ViT, num_classes: int) -> ViT:
    """A copy of ``model`` with a new zero-initialised head (Sec. 3.2) and every parameter trainable."""
    tuned = copy.deepcopy(model)
    new_head(tuned, num_classes)
    for param in tuned.parameters():
        param.requires_grad = True
    return tuned


# Each method's recipe beside TrainConfig's defaults: a learning rate of its own, and the head alone without weight
# decay. From scratch takes the CPU recipe's settings (patch dropout, the first 70 % at half the image size): it
# needs many steps, far more than the others (benchmarks/scratch_curve.py draws its curve).
RECIPES: dict[str, dict] = {
    "linear probe": dict(lr=1e-2, weight_decay=0.0),
    "fine-tuning": dict(lr=5e-4),
    "from scratch": dict(lr=2e-3, low_res_fraction=0.7, patch_dropout=0.25),
}
LOW_RES_SHARE: dict[str, float] = {"from scratch": 0.5}


def transfer_recipe(method: str, steps: int, train_images: int, batch_size: int, seed: int = 0,
                    image_size: int = 32, attention: str = "auto", **changes) -> TrainConfig:
    """The ``TrainConfig`` of ``method`` (``RECIPES``; a low-resolution phase at ``LOW_RES_SHARE`` of
    ``image_size``; then ``changes``) for about ``steps`` steps of ``batch_size`` images over ``train_images``
    images (fewer images than a batch: whole-set batches), a warm-up of a tenth of the epochs, evaluated at the end
    (``eval_every`` in ``changes`` for a curve). ``attention``: the kernel of the methods that train a ViT (the one
    ``choose_precision`` timed fastest; "auto": the model's own); the linear probe trains a head only."""
    if method not in RECIPES:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(RECIPES)}")
    batch = min(batch_size, train_images)
    epochs = max(1, round(steps / (train_images // batch)))
    settings = dict(loader="device", batch_size=batch, epochs=epochs, warmup_epochs=0.1 * epochs, eval_every=epochs,
                    seed=seed, randaugment=False, drop_path=0.0, progress=False)
    if method in LOW_RES_SHARE:
        settings["low_res_size"] = round(LOW_RES_SHARE[method] * image_size)
    if method != "linear probe":
        settings["attention"] = attention
    return TrainConfig(**settings | RECIPES[method] | changes)


@dataclass
class Task:
    """A downstream task: uint8 images [N, C, H, W] and labels [N] to train and to test on, its number of classes,
    and the normalisation of the pre-training (mean, std)."""

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    num_classes: int
    mean: Sequence[float]
    std: Sequence[float]


def transfer_runs(backbone: ViT, task: Task, recipes: dict[str, TrainConfig], device: torch.device,
                  precision: str = "fp32") -> dict[str, dict]:
    """The classifiers of ``recipes`` (method -> ``TrainConfig``, e.g. by ``transfer_recipe``; methods of
    ``METHODS``) for ``task``, each evaluated on its test images, with the ``compare`` results by method:

    - linear probe: the frozen ``backbone``'s features y = LN(z_L^0) of every image computed once, a zero-initialised
      head trained on them;
    - fine-tuning: a copy of ``backbone`` with a new zero-initialised head, all of it trained (crops and flips);
    - from scratch: ``backbone``'s architecture, newly initialised, trained the same way.

    Images are normalised with the task's mean and std, the pre-training statistics, for all three."""
    unknown = set(recipes) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    (train_x, train_y), (test_x, test_y), num_classes, mean, std = task.train, task.test, task.num_classes, \
        task.mean, task.std
    if "linear probe" in recipes:
        features = [extract_features(backbone, normalize(x, mean, std), device) for x in (train_x, test_x)]
    builds = {"linear probe": lambda: zero_head(backbone.config.hidden_dim, num_classes),
              "fine-tuning": lambda: fine_tuning_copy(backbone, num_classes),
              "from scratch": lambda: ViT(replace(backbone.config, num_classes=num_classes))}
    results = {}
    for method, recipe in recipes.items():
        batch, seed = recipe.batch_size, recipe.seed
        if method == "linear probe":
            loaders = (make_loader(TensorDataset(features[0], train_y), batch, True, seed=seed),
                       make_loader(TensorDataset(features[1], test_y), 512, False))
        else:
            loaders = (DeviceLoader(train_x.to(device), train_y.to(device), batch, True, (mean, std), seed=seed),
                       DeviceLoader(test_x.to(device), test_y.to(device), 512, False, (mean, std)))
        results[method] = train_variant(method, builds[method], loaders, recipe, device, precision, log=False)
    return results


def scratch_curves(backbone: ViT, task: Task, recipes: Sequence[TrainConfig], device: torch.device,
                   precision: str = "fp32", log=print) -> dict:
    """The learning curve of the from-scratch classifier (``backbone``'s architecture, newly initialised) under each
    of ``recipes`` (one a seed: ``transfer_recipe("from scratch", ..., eval_every=1)``), evaluated on the task's test
    images after every epoch: {"steps": steps done at each evaluation, "test_acc": one list per recipe, "seconds":
    one per recipe}. ``log`` (None: silent) gets one line per recipe."""
    curves: dict = {"steps": [], "test_acc": [], "seconds": []}
    for recipe in recipes:
        run = transfer_runs(backbone, task, {"from scratch": recipe}, device, precision)["from scratch"]
        curves["steps"] = list(itertools.accumulate(run["history"]["steps"]))
        curves["test_acc"].append(run["history"]["test_acc"])
        curves["seconds"].append(run["seconds"])
        if log:
            log(f"seed {recipe.seed}: {run['test_acc']:.2%} after {curves['steps'][-1]:,} steps, "
                f"{run['seconds']:.0f} s")
    return curves
