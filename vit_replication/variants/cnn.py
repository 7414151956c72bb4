"""A small convolutional network beside the ViT: the paper's point in numbers (Sec. 4; Fig. 3-4). A CNN builds in
locality and translation equivariance, which a ViT has to learn from data; at CIFAR-10's 50,000 images the CNN
should win for the same compute, and the ViT catches up only with more data or more compute.

The network is airbench's layout (Jordan 2024, after Page's ResNet-9 "DAWNBench" network): a 3x3 stem, then three
groups of two 3x3 convolutions with a max-pool after the first, BatchNorm and GELU, global max-pooling and a linear
head. With widths 32/64/128/256 it has about the parameters (1.2 M) and multiply-adds per image (86 M) of the CPU
recipe's ViT, ``vit_cifar_cpu``. It is trained by the same pieces as the ViT (``train_cnn``): the same loaders,
augmentation, optimiser recipe, budget planning and training loop; only the model differs.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..analysis.report import machine, save_history, save_metrics
from ..data.pipeline import run_data
from ..model.vit import count_parameters
from ..training.budget import progress_for
from ..training.config import TrainConfig
from ..training.loop import Run, fit, set_seed
from ..training.precision_choice import PrecisionChoice, fastest_on_cpu, probe_model
from ..weights.checkpoint import load_checkpoint

CNN_WIDTHS = (32, 64, 128, 256)  # the stem's, then each group's


def conv_bn(in_channels: int, out_channels: int, pool: bool = False) -> list[nn.Module]:
    """A 3x3 convolution (no bias: BatchNorm adds one), an optional 2x2 max-pool, BatchNorm and GELU."""
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)]
    return layers + [nn.MaxPool2d(2)] * pool + [nn.BatchNorm2d(out_channels), nn.GELU()]


class CNN(nn.Sequential):
    """Images [B, 3, H, W] -> logits [B, num_classes]: stem, three groups (conv + pool, conv), max-pool, linear."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = CNN_WIDTHS, in_channels: int = 3):
        layers = conv_bn(in_channels, widths[0])
        for before, width in zip(widths, widths[1:]):
            layers += conv_bn(before, width, pool=True) + conv_bn(width, width)
        super().__init__(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[-1], num_classes))


def forward_macs(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-adds of one image's forward pass, counted by PyTorch's FLOP counter (FLOPs / 2)."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, 3, image_size, image_size))
    return counter.get_total_flops() // 2


def choose_cnn_precision(device: torch.device, precision: str, num_classes: int) -> PrecisionChoice:
    """fp32 or bf16, the faster as timed on this CPU for a CNN (as ``precision_choice`` does for the ViT); a GPU or
    a precision given: as asked, or bf16."""
    if precision != "auto":
        return PrecisionChoice(precision, "none", "as asked")
    if device.type != "cpu":
        return PrecisionChoice("bf16", "none", "a GPU")
    timer = lambda p, _, give_up: probe_model(CNN(num_classes), (3, 32, 32), num_classes, p, give_up)  # noqa: E731
    chosen, _, reason = fastest_on_cpu(timer, (("fp32", "conv"), ("bf16", "conv")))
    return PrecisionChoice(chosen, "none", reason.replace(" conv ", " "))


def train_cnn(config: TrainConfig, command: str = "") -> tuple[CNN, dict]:
    """Train and evaluate the CNN by the ViT's training path (``loop.Run``, ``budget.progress_for``, ``loop.fit``)
    with ``config``'s data, recipe and budget (the ViT's own settings, the model, patch dropout and the
    low-resolution phase, do not apply); writes the checkpoint, history and metrics to ``config.out``."""
    started = time.perf_counter()
    config = replace(config, low_res_size=None, patch_dropout=0.0)  # the ViT's own settings: not here
    device, out = torch.device(config.device), Path(config.out)
    data = run_data(config, 32, device)
    choice = choose_cnn_precision(device, config.precision, len(data.classes))
    set_seed(config.seed)
    model = CNN(len(data.classes)).to(device, memory_format=torch.channels_last)
    parameters, macs = count_parameters(model), forward_macs(model)
    print(f"CNN: {parameters:,} parameters, {macs / 1e6:.0f} M multiply-adds per image; "
          f"{len(data.train_set):,} train / {len(data.test_set):,} test images; precision {choice.precision} "
          f"({choice.reason})")
    resumed = load_checkpoint(out / "checkpoint.pt") if config.resume else None
    run = Run.create(config, model, (data.train_loader, data.test_loader), device, choice.precision,
                     len(data.classes))
    run.checkpoint = out / "checkpoint.pt"
    history = fit(run, progress_for(run, started, resumed), resumed)
    metrics = {"model": "cnn", "widths": list(CNN_WIDTHS), "test_acc": history["test_acc"][-1],
               "epochs": len(history["epoch"]), "train_seconds_all_epochs": sum(history["epoch_time"]),
               "parameters": parameters, "forward_macs_per_image": macs,
               "train_images": len(data.train_set), "test_images": len(data.test_set),
               "precision": choice.precision, "precision_reason": choice.reason, "command": command,
               "machine": machine(), "args": config.to_dict(), "wall_seconds_this_run": time.perf_counter() - started}
    save_history(history, out)
    save_metrics(metrics, out)
    print(f"final test accuracy {metrics['test_acc']:.2%} after {metrics['epochs']} epochs "
          f"({metrics['wall_seconds_this_run']:.0f} s for the whole run); outputs in {out}/")
    return model, metrics
