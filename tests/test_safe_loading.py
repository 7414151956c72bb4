"""Loading a file never runs code from it: a checkpoint or .npz whose pickle carries a payload (here: creating a
marker file) is refused by every loading entry point with one line that names the file, and the file is left as it
was (same bytes, same mtime)."""

import os
import pathlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vit_replication.errors import UserError
from vit_replication.model import ViT, config_dict
from vit_replication.weights.checkpoint import load_checkpoint, save_checkpoint
from vit_replication.weights.npz import load_npz
from vit_replication.weights.trained import export_trained, load_trained

REPO = Path(__file__).resolve().parents[1]
# the CLI's tiny synthetic run, in fp32 with sdpa as asked (not timed on this machine)
TINY = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--epochs", "1", "--batch-size", "32",
        "--model", "vit_cifar_tiny", "--no-progress", "--precision", "fp32", "--attention", "sdpa"]


class Payload:
    """Unpickled, this creates ``marker``: what a hostile file would do with os.system instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def hostile_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint shaped like a real one, with the payload in its history."""
    save_checkpoint(path, model={"w": torch.zeros(2)}, config={"hidden_dim": 32}, epoch=1,
                    history={"test_acc": [0.5], "note": Payload(marker)})
    return path


def snapshot(path: Path) -> tuple[bytes, int]:
    """What must stay unchanged: the file's bytes and modification time."""
    return path.read_bytes(), os.stat(path).st_mtime_ns


def assert_refused(message: str, path: Path, marker: Path, before: tuple[bytes, int]) -> None:
    """The payload did not run; the file is untouched; one line names it as unsafe."""
    assert not marker.exists(), "the payload ran"
    assert snapshot(path) == before
    assert "\n" not in message and str(path) in message, message
    assert "could run code" in message and "not a readable" not in message, message


def refused_by(load, path: Path, marker: Path) -> str:
    """``load()`` raises a one-line UserError naming ``path`` as unsafe, runs no payload and leaves the file as it
    was; returns the message."""
    before = snapshot(path)
    with pytest.raises(UserError) as info:
        load()
    assert_refused(str(info.value), path, marker, before)
    return str(info.value)


def refused_on_the_command_line(args: list[str], path: Path, marker: Path) -> None:
    """``python -m args`` ends with exit status 2 and one line, ``error: ...``, naming ``path`` as unsafe; no
    traceback, no payload run, the file as it was."""
    before = snapshot(path)
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert_refused(result.stderr.strip(), path, marker, before)


@pytest.fixture
def run_dir(tmp_path) -> tuple[Path, Path]:
    """(run folder holding a hostile checkpoint.pt, the marker its payload would create)."""
    marker = tmp_path / "PWNED"
    hostile_checkpoint(tmp_path / "run" / "checkpoint.pt", marker)
    return tmp_path / "run", marker


def test_the_payload_is_live(tmp_path):
    """The control: loaded without weights_only, the hostile file runs its payload (so the tests below test
    something)."""
    marker = tmp_path / "PWNED"
    torch.load(hostile_checkpoint(tmp_path / "checkpoint.pt", marker), weights_only=False)
    assert marker.exists()


def test_load_checkpoint_refuses_code(run_dir):
    run, marker = run_dir
    assert "delete it" in refused_by(lambda: load_checkpoint(run / "checkpoint.pt"), run / "checkpoint.pt", marker)


def test_load_trained_refuses_code(run_dir, capsys):
    run, marker = run_dir
    refused_by(lambda: load_trained(run), run / "checkpoint.pt", marker)
    assert "shipped" not in capsys.readouterr().out  # the run's own file was read, not the shipped model


def test_export_trained_refuses_code(run_dir, tmp_path):
    run, marker = run_dir
    refused_by(lambda: export_trained(run, tmp_path / "export"), run / "checkpoint.pt", marker)
    assert not (tmp_path / "export" / "model.pt").exists()


def test_command_line_resume_refuses_code(run_dir):
    run, marker = run_dir
    refused_on_the_command_line(["vit_replication.train", *TINY, "--resume", "--out", str(run)],
                                run / "checkpoint.pt", marker)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"]  # nothing written next to it


def test_export_command_refuses_code_in_one_line(run_dir, tmp_path):
    run, marker = run_dir
    refused_on_the_command_line(["vit_replication.weights.trained", str(run), str(tmp_path / "out")],
                                run / "checkpoint.pt", marker)
    assert not (tmp_path / "out").exists()


def test_truncated_checkpoint_is_told_apart_from_an_unsafe_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model={"w": torch.zeros(2)}, epoch=1)
    path.write_bytes(path.read_bytes()[:100])
    before = snapshot(path)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and f"{path} is not a readable checkpoint" in message, message
    assert "truncated" in message and "could run code" not in message, message
    assert snapshot(path) == before


def test_load_npz_refuses_object_arrays(tmp_path):
    marker, path = tmp_path / "PWNED", tmp_path / "ViT-B_16.npz"
    np.savez(path, **{"cls": np.zeros((1, 1, 8), np.float32),
                      "head/kernel": np.array([Payload(marker)], dtype=object)})  # pickled, as np.savez does
    with np.load(path, allow_pickle=True) as archive:  # the control: unpickled, it runs
        archive["head/kernel"]
    assert marker.exists()
    marker.unlink()
    assert "object array" in refused_by(lambda: load_npz(path), path, marker)


def test_a_checkpoint_of_plain_state_round_trips(tmp_path, tiny_config):
    """What the package writes (state dicts of model, optimizer, scheduler and GradScaler, config dicts, history
    with None for epochs without evaluation) reads back equal under weights_only."""
    model = ViT(tiny_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": torch.amp.GradScaler("cpu", enabled=True).state_dict(), "config": config_dict(tiny_config),
             "classes": ["a", "b"], "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "epoch": 2,
             "history": {"test_acc": [None, 0.5], "lr": [1e-3, 5e-4]}, "ema": {"decay": 0.99, "updates": 4}}
    save_checkpoint(tmp_path / "checkpoint.pt", **state)
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert sorted(loaded) == sorted(state)
    assert all(torch.equal(loaded["model"][key], value) for key, value in state["model"].items())
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert loaded["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]
    for key in ("scheduler", "scaler", "config", "classes", "mean", "std", "epoch", "history", "ema"):
        assert loaded[key] == state[key], key
    fresh = torch.optim.AdamW(ViT(tiny_config).parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])  # and it restores
