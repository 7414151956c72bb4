import json

import pytest
import torch

from vit_replication import train

ARGS = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
        "--no-progress", "--seed", "3"]


def test_cli_tiny_run_writes_history_metrics_checkpoint_and_figures(tmp_path):
    metrics = train.main(ARGS + ["--epochs", "1", "--out", str(tmp_path)])
    for name in ("history.json", "history.csv", "metrics.json", "checkpoint.pt", "curves.png", "predictions.png",
                 "confusion.png", "attention_heads.png", "rollout.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    history = json.loads((tmp_path / "history.json").read_text())
    assert saved["test_acc"] == metrics["test_acc"] == history["test_acc"][-1]
    assert saved["parameters"] == 3_195_146 and saved["epochs"] == 1
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss,train_acc")


def test_cli_resume_equals_uninterrupted_run(tmp_path):
    train.main(ARGS + ["--epochs", "2", "--out", str(tmp_path / "full")])
    train.main(ARGS + ["--epochs", "1", "--out", str(tmp_path / "part")])
    train.main(ARGS + ["--epochs", "2", "--out", str(tmp_path / "part"), "--resume"])
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    resumed = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert resumed["epoch"] == full["epoch"] == 2
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert resumed["history"]["test_loss"] == full["history"]["test_loss"]


def test_cli_rejects_unknown_model(capsys):
    with pytest.raises(SystemExit):
        train.main(["--model", "vit_z"])
    assert "invalid choice: 'vit_z'" in capsys.readouterr().err
