import json
import subprocess
import sys
from pathlib import Path

import torch

from vit_replication import train
from vit_replication.data import make_loader
from vit_replication.engine import evaluate
from vit_replication.model import ViT, get_config

WORKER = Path(__file__).with_name("ddp_worker.py")


def test_torchrun_two_cpu_processes_keep_identical_weights(tmp_path):
    """torchrun --nproc_per_node=2 with the gloo backend: both replicas end with the same, trained weights."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
        "--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--epochs", "2",
        "--device", "cpu", "--no-progress", "--out", str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs"] == 2
    assert result.stdout.count("final test accuracy") == 1  # only the main process reports
    # the weights were trained: they differ from the seeded initialisation both processes started from
    torch.manual_seed(metrics["args"]["seed"])
    initial = ViT(get_config("vit_cifar", num_classes=10)).state_dict()
    assert not torch.equal(initial["head.weight"], rank0["head.weight"])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for key, value in checkpoint["model"].items():
        assert torch.equal(value, rank0[key]), key
    # each process evaluated half of the test set; the summed result equals one process evaluating all of it
    args = train.parse_args(command[command.index("--dataset"):])
    _, test_set, _ = train.build_data(args, 32)
    model = ViT(get_config("vit_cifar", num_classes=10))
    model.load_state_dict(rank0)
    whole = evaluate(model, make_loader(test_set, 64, False), torch.nn.CrossEntropyLoss(label_smoothing=0.1),
                     torch.device("cpu"), progress=False)
    assert metrics["test_acc"] == whole["acc"]
    assert abs(metrics["test_loss"] - whole["loss"]) < 1e-5


def test_torchrun_time_budget_plans_the_same_epochs_in_every_process(tmp_path):
    """With --time-budget each process times its own steps; they must still agree on the schedule (else DDP hangs)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
        "--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
        "--time-budget", "25", "--device", "cpu", "--no-progress", "--out", str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(value, rank1[key]) for key, value in rank0.items())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] >= 1 and f"{metrics['epochs']} epochs planned" in result.stdout
