"""Trained models from checkpoints: checked against the run they resume, turned back into a
``model.ViT`` (``load_trained``), and exported as a small shippable model (``export_trained``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..data.augment import normalize
from ..data.datasets import CIFAR10_MEAN, CIFAR10_STD, cifar10_check_subset
from ..errors import UserError, one_line
from ..model.vit import ViT, config_from_dict
from .checkpoint import config_differences, load_checkpoint, save_checkpoint


def check_resumable(checkpoint: dict, config: dict, path: str | Path) -> None:
    """A one-line ``UserError`` when ``checkpoint`` holds another architecture than ``config``
    (runtime settings may change: ``runtime_changes`` lists them)."""
    differences = config_differences(checkpoint.get("config", {}), config)
    if differences:
        raise UserError(f"--resume: {path} holds another model ({'; '.join(differences)}); resume with the options "
                        "it was trained with, or choose a new --out")


def runtime_changes(checkpoint: dict, runtime: dict) -> list[str]:
    """'name: stored -> requested' for every runtime setting that a resumed run changes."""
    stored = checkpoint.get("runtime", {})
    return config_differences(stored, {key: value for key, value in runtime.items() if key in stored})


SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "assets" / "cifar10_vit"  # model.pt + metrics.json


def model_from_checkpoint(checkpoint: dict):
    """The ``model.ViT`` of a checkpoint in eval mode and fp32, with the default runtime settings
    (``model.configure``) whatever it was trained with."""
    model = ViT(config_from_dict(checkpoint["config"])).eval()
    model.load_state_dict({key: value.float() for key, value in checkpoint["model"].items()})
    return model


def load_trained(run_dir: str | Path | None = None, shipped: str | Path = SHIPPED_MODEL):
    """(model, checkpoint) of the run in ``run_dir`` (its ``checkpoint.pt``); without one, the
    CIFAR-10 model that ships in ``assets/``, after one line that says so. The checkpoint has
    ``config``, ``classes``, ``mean``, ``std``, ``history``, ``epoch``."""
    path = Path(run_dir) / "checkpoint.pt" if run_dir is not None else None
    if path is None or not path.is_file():
        path = Path(shipped) / "model.pt"
        if not path.is_file():
            raise UserError(f"no trained model: neither {Path(run_dir or '.') / 'checkpoint.pt'} nor {path} exists; "
                            "run notebook 06 (or the README's command line) first")
        mine = f"No run of your own in {run_dir}: u" if run_dir is not None else "U"
        print(f"{mine}sing the model shipped in {_shown(path.parent)}.")
    checkpoint = load_checkpoint(path)
    if "mean" not in checkpoint:  # a checkpoint without its normalisation used CIFAR-10's
        checkpoint.update(mean=CIFAR10_MEAN, std=CIFAR10_STD)
    model = model_from_checkpoint(checkpoint)
    metrics = path.parent / "metrics.json"
    if metrics.is_file():
        print(f"loaded {_shown(path)}: {describe_trained(json.loads(metrics.read_text()))}")
    else:  # a checkpoint without its run's metrics (a run still going, or copied alone)
        accuracy = checkpoint["history"]["test_acc"][-1]
        print(f"loaded {_shown(path)}: {checkpoint['epoch']} epochs, test accuracy {accuracy:.2%}")
    return model, checkpoint


def describe_trained(metrics: dict) -> str:
    """Which model a run trained, in one line: name and size, recipe, training time and machine, test accuracy and
    data, from the run's ``metrics.json`` (as ``train.run`` writes it)."""
    preset = re.search(r"--preset (\S+)", metrics.get("command", ""))
    budget = metrics.get("args", {}).get("time_budget")
    length = f"a {budget / 60:.0f}-minute budget" if budget else f"{metrics['epochs']} epochs"
    loaded = metrics.get("loaded", metrics.get("dataset", ""))
    data = "CIFAR-10, JPEG copy" if "cifar10-jpg" in loaded else loaded
    cpu = metrics.get("machine", "").split(",")[0]
    return (f"{metrics['model']} ({metrics['parameters']:,} parameters), "
            f"{'--preset ' + preset.group(1) if preset else 'its own recipe'} within {length}: "
            f"{metrics['epochs']} epochs, {metrics['train_seconds_all_epochs'] / 60:.0f} min of training "
            f"({metrics['precision']}, {cpu}); test accuracy {metrics['test_acc']:.2%} ({data})")


@torch.no_grad()
def count_correct(model, images: torch.Tensor, labels: torch.Tensor, mean, std, batch_size: int = 500) -> int:
    """How many of the uint8 ``images`` the model classifies right, in fp32 on the CPU."""
    model.eval()
    return sum(int((model(normalize(images[i:i + batch_size], mean, std)).argmax(-1) == labels[i:i + batch_size])
                   .sum()) for i in range(0, len(images), batch_size))


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (assets/...), else as given."""
    try:
        return str(path.resolve().relative_to(SHIPPED_MODEL.parents[1]))
    except ValueError:
        return str(path)


def export_trained(run_dir: str | Path, out_dir: str | Path, check_source: str | Path | None = None) -> Path:
    """Write the run in ``run_dir`` to ``out_dir`` as a small, shippable model: ``model.pt`` (fp16 weights and
    the run's data, no optimizer state) and a copy of ``metrics.json``. With ``check_source`` (CIFAR-10 as an
    ImageFolder folder or .tar.gz) it stores the fp16 model's result on ``cifar10_check_subset`` for tests to
    reproduce."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    keep = ("config", "classes", "dataset", "mean", "std", "history", "epoch", "epochs_planned")
    shipped = {key: checkpoint[key] for key in keep if key in checkpoint}
    shipped["model"] = {key: value.half() if value.is_floating_point() else value
                        for key, value in checkpoint["model"].items()}
    if check_source is not None:
        images, labels, classes = cifar10_check_subset(check_source)
        if classes != shipped["classes"]:
            raise UserError(f"{check_source}: classes {classes} differ from the model's {shipped['classes']}")
        correct = count_correct(model_from_checkpoint(shipped), images, labels, shipped["mean"], shipped["std"])
        shipped["check"] = {"subset": "every 10th CIFAR-10 test image in sorted path order", "images": len(labels),
                            "correct": correct}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / "model.pt", **shipped)
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        (out_dir / "metrics.json").write_text(metrics.read_text())
    return out_dir / "model.pt"


if __name__ == "__main__":  # python -m vit_replication.weights.trained RUN_DIR OUT_DIR [CIFAR10_JPG]
    import sys

    if len(sys.argv) not in (3, 4):
        print("usage: python -m vit_replication.weights.trained RUN_DIR OUT_DIR [CIFAR10_JPG]  (export a run as a "
              "shippable model; with the CIFAR-10 ImageFolder copy, store its result on the check subset)",
              file=sys.stderr)
        raise SystemExit(2)
    try:
        print(f"wrote {export_trained(*sys.argv[1:])}")
    except UserError as err:  # a missing, unreadable or unsafe file: one line, as the training command says it
        print(f"error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None
