"""The model shipped in assets/ loads into the package's ViT and reproduces its stored result on a fixed subset of
the CIFAR-10 test set (every 10th image of the JPEG copy in data/cifar10-jpg, where it has been extracted)."""

import json
from pathlib import Path

import pytest
import torch

from vit_replication.data import cifar10_check_subset
from vit_replication.weights.checkpoint import load_checkpoint
from vit_replication.weights.trained import SHIPPED_MODEL, count_correct, load_trained

CIFAR10_JPG = Path(__file__).resolve().parents[1] / "data" / "cifar10-jpg"


def test_shipped_model_is_small_and_complete():
    path = SHIPPED_MODEL / "model.pt"
    assert path.stat().st_size <= 10 * 2**20  # fp16 weights, at most 10 MB
    checkpoint = load_checkpoint(path)
    assert all(v.dtype == torch.float16 for v in checkpoint["model"].values() if v.is_floating_point())
    for key in ("config", "classes", "mean", "std", "history", "epoch", "check"):
        assert key in checkpoint, key
    metrics = json.loads((SHIPPED_MODEL / "metrics.json").read_text())
    for key in ("test_acc", "wall_seconds_this_run", "command", "machine", "train_images", "test_images"):
        assert key in metrics, key
    assert metrics["test_acc"] == checkpoint["history"]["test_acc"][-1]
    assert metrics["test_images"] == 10_000 and metrics["train_images"] == 50_000


def test_shipped_model_meets_the_cpu_bar_of_one_command():
    """The project's bar for the CPU model: ≥80 % on all 10,000 test images from one command of a CPU
    recipe (``--preset cifar10-cpu``, or ``long-cpu``, the 150-minute preset), started once (not resumed), in at
    most 150 minutes for the whole run."""
    metrics = json.loads((SHIPPED_MODEL / "metrics.json").read_text())
    command = metrics["command"].split()
    assert command[:4] == ["python", "-m", "vit_replication.train", "--preset"]
    assert command[4] in ("cifar10-cpu", "long-cpu")
    assert not metrics["args"]["resume"] and metrics["args"]["time_budget"] <= 150 * 60
    assert metrics["test_images"] == 10_000 and metrics["test_acc"] >= 0.80
    assert metrics["wall_seconds_this_run"] <= 150 * 60


@pytest.mark.skipif(not (CIFAR10_JPG / "test").is_dir(), reason=f"CIFAR-10 JPEG copy not at {CIFAR10_JPG}")
def test_shipped_model_reproduces_its_stored_accuracy_on_the_check_subset(capsys):
    model, checkpoint = load_trained(None)
    assert "sing the model shipped in" in capsys.readouterr().out  # "Using ...": no run was asked for
    images, labels, classes = cifar10_check_subset(CIFAR10_JPG)
    assert classes == checkpoint["classes"] and len(labels) == checkpoint["check"]["images"] == 1000
    correct = count_correct(model, images, labels, checkpoint["mean"], checkpoint["std"])
    assert abs(correct - checkpoint["check"]["correct"]) <= 1  # one image of slack for another CPU's rounding
    assert correct / len(labels) >= 0.75  # the 1,000 images agree with the model's 10,000-image accuracy
