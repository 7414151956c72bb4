"""What a run leaves behind: the history as JSON and CSV, the metrics, and the figures (curves,
predictions, confusion matrix, last-layer attention per head, attention rollout)."""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

from ..data.augment import DeviceLoader, normalize
from ..data.datasets import sample_batch
from ..training.loop import confusion_matrix, predict
from ..training.precision import cpuinfo_field
from . import attention_maps, visualize


def save_history(history: dict[str, list], out: Path) -> None:
    """history.json and history.csv (one row per epoch; empty test cells for epochs without an evaluation)."""
    (out / "history.json").write_text(json.dumps(history, indent=1))
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(history)
        writer.writerows(zip(*history.values()))


def machine() -> str:
    """The hardware a run was made on, for its metrics: GPU name, or CPU model and the threads PyTorch used."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpu = cpuinfo_field("model name") or platform.processor() or platform.machine()
    flags = (cpuinfo_field("flags") or "").split()
    # the instruction sets that decide what is fast: bf16 is native only with AVX-512 BF16 or AMX
    kinds = [name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"),
                                     ("avx2", "AVX2")) if flag in flags]
    kind = f" ({kinds[0] if kinds[0] != 'AVX2' else 'AVX2 only'})" if kinds else ""
    return f"{cpu}{kind}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def save_metrics(metrics: dict, out: Path) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))


def save_figures(model: nn.Module, history: dict, test_loader, classes: list[str], device: torch.device, out: Path,
                 stats: tuple[Sequence[float], Sequence[float]], precision: str = "fp32") -> None:
    """Curves, a prediction grid, the confusion matrix, last-layer head attention and rollout maps;
    ``stats`` is the normalisation (mean, std)."""
    stats = dict(zip(("mean", "std"), stats))
    figures = {"curves": visualize.plot_history(history)}
    probs, targets = predict(model, test_loader, device, precision)
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
    heads = attention_maps.cls_attention(attentions[-1].cpu(), pool=model.config.pool)
    figures["attention_heads"] = visualize.plot_attention_heads(images[0], heads[0], **stats,
                                                                pool=model.config.pool)
    maps = attention_maps.rollout_map([a.cpu() for a in attentions], pool=model.config.pool)
    figures["rollout"] = visualize.plot_rollout(images[:8], maps[:8], [classes[i] for i in labels[:8]], **stats)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
