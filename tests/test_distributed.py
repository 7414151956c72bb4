import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from vit_replication import train
from vit_replication.data import make_loader
from vit_replication.data.pipeline import build_data
from vit_replication.model import ViT, get_config
from vit_replication.training.budget import FIGURES_SECONDS
from vit_replication.training.loop import evaluate

WORKER = Path(__file__).with_name("ddp_worker.py")
DRAWS_WORKER = Path(__file__).with_name("ddp_draws_worker.py")
# a tiny ViT, and fp32 as asked (not --precision auto, which times this machine): the same run on any machine
TINY = ["--hidden-dim", "32", "--num-layers", "2", "--num-heads", "2", "--mlp-dim", "64"]
TINY_CONFIG = get_config("vit_cifar", num_classes=10, hidden_dim=32, num_layers=2, num_heads=2, mlp_dim=64)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def test_torchrun_ranks_share_the_shuffle_but_draw_their_own_augmentation(tmp_path):
    """2 gloo processes: their shards of an epoch are disjoint and together the epoch's permutation; their crops,
    flips, RandAugment ops and global-RNG draws (MixUp, CutMix, drop-path) differ."""
    result = subprocess.run(TORCHRUN + [str(DRAWS_WORKER), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = torch.load(tmp_path / "draws0.pt"), torch.load(tmp_path / "draws1.pt")
    permutation = torch.randperm(64, generator=torch.Generator().manual_seed(3 * 1000 + 2))  # seed 3, epoch 2
    assert torch.equal(torch.sort(torch.cat([a["order"], b["order"]])).values, torch.arange(64))
    assert torch.equal(a["order"], permutation[0::2]) and torch.equal(b["order"], permutation[1::2])
    assert not torch.equal(a["global"], b["global"])
    assert a["images"].shape == b["images"].shape and not torch.allclose(a["images"], b["images"])


def test_torchrun_resume_equals_an_uninterrupted_run(tmp_path):
    args = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--device",
            "cpu", "--no-progress", "--loader", "device", "--mixup", "0.8", "--drop-path", "0.1", "--precision", "fp32",
            *TINY]
    for argv in (["--epochs", "2", "--out", str(tmp_path / "full")], ["--epochs", "1", "--out", str(tmp_path / "p")],
                 ["--epochs", "2", "--out", str(tmp_path / "p"), "--resume"]):
        result = subprocess.run(TORCHRUN + [str(WORKER)] + args + argv, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    full, resumed = torch.load(tmp_path / "full" / "rank1.pt"), torch.load(tmp_path / "p" / "rank1.pt")
    for key, value in full.items():
        assert torch.equal(value, resumed[key]), key


def test_torchrun_two_cpu_processes_keep_identical_weights(tmp_path):
    """torchrun --nproc_per_node=2 with the gloo backend: both replicas end with the same, trained weights."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(WORKER),
        "--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32", "--epochs", "2",
        "--device", "cpu", "--no-progress", "--out", str(tmp_path), "--precision", "fp32", *TINY,
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
    initial = ViT(TINY_CONFIG).state_dict()
    assert not torch.equal(initial["head.weight"], rank0["head.weight"])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    for key, value in checkpoint["model"].items():
        assert torch.equal(value, rank0[key]), key
    # each process evaluated half of the test set; the summed result equals one process evaluating all of it
    args = train.parse_args(command[command.index("--dataset"):])
    _, test_set, _, _ = build_data(args, 32)
    model = ViT(TINY_CONFIG)
    model.load_state_dict(rank0)
    whole = evaluate(model, make_loader(test_set, 64, False), torch.device("cpu"))  # the plain cross-entropy
    assert metrics["test_acc"] == whole["acc"]
    assert abs(metrics["test_loss"] - whole["loss"]) < 1e-5


def test_torchrun_time_budget_stops_every_process_at_the_same_step(tmp_path):
    """With --time-budget each process reads its own clock; they must still take the same steps (else DDP hangs).
    Each runs on a step clock, rank 1 twice as slow as rank 0 (1 s a training forward pass, 0.25 s an evaluation
    one), and both follow the slower: its set-up evaluation (0.25 s) and two more and the figures' seconds are taken
    from the budget, leaving 5 s; its epochs take 2 x 1 s + 0.25 s, so the third stops after one step. On rank 0's
    clock alone the 5 s would hold 9 steps."""
    command = TORCHRUN + [
        str(WORKER), "--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
        "--time-budget", str(5 + 3 * 0.25 + FIGURES_SECONDS), "--device", "cpu", "--no-progress",
        "--out", str(tmp_path), "--precision", "fp32", *TINY,
    ]
    env = {**os.environ, "TEST_STEP_SECONDS": "0.5,0.125"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(value, rank1[key]) for key, value in rank0.items())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["steps"] == [2, 2, 1] and metrics["steps"] == 5 and metrics["budget"] == "5 s of training"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["budget_seconds"] == 5
