import json

import pytest
import torch

from vit_replication import budget, train
from vit_replication.checkpoint import export_trained, load_trained
from vit_replication.errors import UserError

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


def test_load_trained_reads_a_cli_run_and_rebuilds_the_model(tmp_path):
    train.main(ARGS + ["--epochs", "1", "--out", str(tmp_path)])
    model, checkpoint = load_trained(tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 1 and checkpoint["classes"] == saved["classes"]
    assert checkpoint["mean"] == saved["mean"] and len(checkpoint["std"]) == 3  # the run's own normalisation
    for key, value in saved["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.training


def test_load_trained_without_a_run_uses_the_shipped_model(tmp_path, capsys):
    train.main(ARGS + ["--epochs", "1", "--out", str(tmp_path / "run")])
    shipped = export_trained(tmp_path / "run", tmp_path / "assets")
    assert shipped.stat().st_size < (tmp_path / "run" / "checkpoint.pt").stat().st_size / 2  # fp16, no optimizer
    model, checkpoint = load_trained(tmp_path / "missing", shipped=tmp_path / "assets")
    assert f"No run of your own in {tmp_path / 'missing'}: using the model shipped in" in capsys.readouterr().out
    full = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, full[key].half().float(), rtol=0, atol=0)
    with pytest.raises(UserError, match="no trained model: neither"):
        load_trained(tmp_path / "missing", shipped=tmp_path / "nothing")


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


def test_cli_time_budget_plans_epochs_from_step_times_and_trains_like_a_fixed_epoch_run(tmp_path, monkeypatch,
                                                                                       capsys):
    # step times are injected (100 s a training step, 0.5 s an evaluation batch), so the plan does not depend on how
    # fast this machine is: 2 steps + 1 evaluation batch = 200.5 s an epoch; the budget holds 3 epochs, the final
    # evaluation and up to 100 s of data loading, model building and checkpoint timing, but not a 4th epoch
    monkeypatch.setattr(budget, "time_steps", lambda *args, **kwargs: (100.0, 0.5))
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    argv = ARGS + ["--time-budget", str(3 * 200.5 + 0.5 + 100), "--save-every", "2"]
    planned = train.main(argv + ["--out", str(tmp_path / "budget")])
    epochs = planned["epochs"]
    assert epochs == 3 and f"{epochs} epochs planned" in capsys.readouterr().out
    monkeypatch.undo()
    fixed = train.main(ARGS + ["--epochs", str(epochs), "--out", str(tmp_path / "fixed")])
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("budget", "fixed"))
    assert a["epoch"] == b["epoch"] == a["epochs_planned"] == epochs
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert planned["test_acc"] == fixed["test_acc"]
    # resuming a budgeted run keeps its planned schedule (not --epochs' default of 10): nothing is left to train
    resumed = train.main(argv + ["--resume", "--out", str(tmp_path / "budget")])
    assert resumed["epochs"] == epochs and resumed["test_acc"] == planned["test_acc"]


@pytest.mark.parametrize("train_step, eval_step, save, spent, expected", [
    (1.0, 0.5, 0.0, 0.0, 3),    # (10 - 0.5 final evaluation) // (2 x 1 + 0.5 / 1 + 0) = 3
    (1.0, 0.5, 1.0, 0.0, 3),    # a save every 2 epochs adds 0.5 s an epoch: 9.5 // 3.0 = 3
    (0.25, 0.5, 0.0, 2.0, 7),   # 7.5 // 1.0
    (1.0, 0.5, 0.0, 9.0, None),  # 0.5 s left: not even one epoch
])
def test_epochs_that_fit_is_arithmetic_on_step_times(train_step, eval_step, save, spent, expected, monkeypatch):
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    args = train.parse_args(["--time-budget", "10", "--save-every", "2", "--eval-every", "1"])
    if expected is None:
        with pytest.raises(UserError, match="less than one epoch"):
            budget.epochs_that_fit(args, 2, 1, train_step, eval_step, save, spent)
    else:
        assert budget.epochs_that_fit(args, 2, 1, train_step, eval_step, save, spent) == expected


def test_low_resolution_phase_and_eval_every(tmp_path, capsys):
    metrics = train.main(ARGS + ["--epochs", "4", "--loader", "device", "--low-res-size", "16",
                                 "--low-res-fraction", "0.5", "--eval-every", "3", "--patch-dropout", "0.25",
                                 "--precision", "bf16", "--attention", "explicit", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "the first 2 of 4 epochs at 16x16 pixels" in out and "precision bf16" in out
    history = json.loads((tmp_path / "history.json").read_text())
    assert [a is not None for a in history["test_acc"]] == [False, False, True, True]  # epoch 3 and the last
    assert metrics["config"]["dynamic_image_size"] and metrics["config"]["patch_dropout"] == 0.25
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_preset_defaults_can_be_overridden_both_ways():
    from vit_replication.train import parse_args

    assert parse_args(["--preset", "cifar10-cpu"]).randaugment is False  # the preset's choice
    assert parse_args(["--preset", "cifar10-cpu", "--randaugment"]).randaugment is True
    assert parse_args([]).randaugment is True and parse_args(["--no-randaugment"]).randaugment is False
    assert parse_args(["--preset", "cifar10-cpu", "--low-res-fraction", "0.5"]).low_res_fraction == 0.5
