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
    # vit_cifar: 218.24 M multiply-accumulates per image; 64 training images (2 batches of 32) x 3 passes
    assert saved["forward_flops_per_image"] == 2 * 218_240_512
    assert saved["training_flops"] == 3 * 2 * 218_240_512 * 64
    assert 0 < saved["train_seconds_this_run"] < saved["wall_seconds_this_run"]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_loss,train_acc")


@pytest.mark.parametrize("extra", [["--loader", "dataloader"], ["--loader", "device"],
                                   ["--loader", "device", "--mixup", "0.8", "--cutmix", "1.0"]])
def test_cli_resume_equals_uninterrupted_run(tmp_path, extra):
    args = ARGS + extra
    train.main(args + ["--epochs", "2", "--out", str(tmp_path / "full")])
    train.main(args + ["--epochs", "1", "--out", str(tmp_path / "part")])
    train.main(args + ["--epochs", "2", "--out", str(tmp_path / "part"), "--resume"])
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    resumed = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)
    assert resumed["epoch"] == full["epoch"] == 2
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert resumed["history"]["test_loss"] == full["history"]["test_loss"]


def test_cli_device_loader_writes_figures_and_learns_the_same_task(tmp_path):
    metrics = train.main(ARGS + ["--epochs", "1", "--loader", "device", "--out", str(tmp_path)])
    for name in ("checkpoint.pt", "predictions.png", "confusion.png", "rollout.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert metrics["args"]["loader"] == "device" and 0.0 <= metrics["test_acc"] <= 1.0
    with pytest.raises(ValueError, match="--loader device needs images of the model's size"):
        train.main(ARGS + ["--loader", "device", "--resize", "--out", str(tmp_path / "bad")])


def test_cli_rejects_unknown_model(capsys):
    with pytest.raises(SystemExit):
        train.main(["--model", "vit_z"])
    assert "invalid choice: 'vit_z'" in capsys.readouterr().err


def test_load_trained_reads_a_cli_run_and_rebuilds_the_model(tmp_path):
    train.main(ARGS + ["--epochs", "1", "--out", str(tmp_path)])
    model, checkpoint = train.load_trained(tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 1 and checkpoint["classes"] == saved["classes"]
    for key, value in saved["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.training


def test_load_trained_without_checkpoint_says_so_and_trains_a_quick_model(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(train, "main", lambda argv: calls.append(argv) or train.run(train.parse_args(
        argv[:argv.index("--train-size")] + ["--train-size", "64", "--test-size", "32", "--batch-size", "32",
                                             "--no-progress", "--out", argv[-1]])))
    model, checkpoint = train.load_trained(tmp_path / "missing", tmp_path / "quick")
    missing = tmp_path / "missing" / "checkpoint.pt"
    assert f"No checkpoint at {missing}: run notebook 05 first" in capsys.readouterr().out
    assert calls and (tmp_path / "quick" / "checkpoint.pt").is_file() and checkpoint["epoch"] == 2
    again, _ = train.load_trained(tmp_path / "missing", tmp_path / "quick")  # reused, not retrained
    assert len(calls) == 1 and "Using the quick synthetic-shapes model" in capsys.readouterr().out
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_cli_mixing_and_channels_last_change_the_run_as_they_should(tmp_path):
    base = ARGS + ["--epochs", "1", "--loader", "device"]
    train.main(base + ["--out", str(tmp_path / "plain")])
    train.main(base + ["--channels-last", "--out", str(tmp_path / "cl")])
    train.main(base + ["--mixup", "0.8", "--out", str(tmp_path / "mixup")])
    plain, cl, mixup = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["model"]
                        for d in ("plain", "cl", "mixup"))
    # channels-last changes only how the Conv2d weight is laid out in memory, not what is computed
    assert all(torch.allclose(plain[k], cl[k], atol=1e-5) for k in plain)
    assert not all(torch.allclose(plain[k], mixup[k], atol=1e-3) for k in plain)  # MixUp changes the training
    with pytest.raises(SystemExit):
        train.main(base + ["--mixup", "nan-ish", "--out", str(tmp_path / "bad")])
    with pytest.raises(ValueError, match="alphas must be >= 0"):
        train.main(base + ["--cutmix", "-1", "--out", str(tmp_path / "bad")])


def test_cli_time_budget_plans_epochs_and_trains_like_a_fixed_epoch_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(train, "FIGURES_SECONDS", 0.5)  # this tiny run's figures take well under a second
    budget = train.main(ARGS + ["--time-budget", "12", "--save-every", "2", "--out", str(tmp_path / "budget")])
    epochs = budget["epochs"]
    assert epochs >= 2 and f"--time-budget 12 s: {epochs} epochs planned" in capsys.readouterr().out
    fixed = train.main(ARGS + ["--epochs", str(epochs), "--out", str(tmp_path / "fixed")])
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("budget", "fixed"))
    assert a["epoch"] == b["epoch"] == a["epochs_planned"] == epochs
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert budget["test_acc"] == fixed["test_acc"]
    # resuming a budgeted run keeps its planned schedule (not --epochs' default of 10): nothing is left to train
    resumed = train.main(ARGS + ["--time-budget", "12", "--resume", "--out", str(tmp_path / "budget")])
    assert resumed["epochs"] == epochs and resumed["test_acc"] == budget["test_acc"]


def test_cli_time_budget_too_small_and_bad_save_every_say_so(tmp_path):
    with pytest.raises(ValueError, match=r"--time-budget 0.5 s leaves -?\d+ s for training, less than one epoch"):
        train.main(ARGS + ["--time-budget", "0.5", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="--save-every must be >= 1, got 0"):
        train.main(ARGS + ["--time-budget", "60", "--save-every", "0", "--out", str(tmp_path)])
