import csv
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from vit_replication import budget, train
from vit_replication.errors import UserError
from vit_replication.synthetic import SyntheticShapes
from vit_replication.trained import export_trained, load_trained

# fp32 as asked, not --precision auto's choice (timed on the machine): the same run on every machine
DATA = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
        "--no-progress", "--seed", "3", "--precision", "fp32"]
# vit_cifar's 32x32 images and 4x4 patches (64 tokens + class token) at tiny widths: 21,162 parameters
TINY_MODEL = ["--hidden-dim", "32", "--num-layers", "2", "--num-heads", "2", "--mlp-dim", "64"]
ARGS = DATA + TINY_MODEL
FIGURES = ("curves", "predictions", "confusion", "attention_heads", "rollout")


@pytest.fixture(scope="module")
def dataloader_run(tmp_path_factory) -> tuple[Path, dict]:
    """One 3-epoch run with the DataLoader, shared by the tests that only read its outputs: (folder, metrics)."""
    out = tmp_path_factory.mktemp("dataloader_run")
    return out, train.main(ARGS + ["--epochs", "3", "--out", str(out)])


@pytest.fixture(scope="module")
def device_run(tmp_path_factory) -> tuple[Path, dict]:
    """One 1-epoch run with ``--loader device``, shared likewise."""
    out = tmp_path_factory.mktemp("device_run")
    return out, train.main(ARGS + ["--epochs", "1", "--loader", "device", "--out", str(out)])


@pytest.fixture
def no_figures(monkeypatch):
    """For tests that read only checkpoints and metrics: the figures, most of a tiny run's time, are not drawn (the
    shared runs above draw and check them)."""
    monkeypatch.setattr(train, "save_figures", lambda *args, **kwargs: None)


def png_pixels(path: Path) -> np.ndarray:
    """The RGB pixels of a PNG file (fails on anything else, or a truncated file)."""
    with Image.open(path) as image:
        assert image.format == "PNG", path
        return np.asarray(image.convert("RGB"))


def assert_figures(out: Path, names=FIGURES) -> None:
    """Each figure is a whole PNG with something drawn on it."""
    for name in names:
        pixels = png_pixels(out / f"{name}.png")
        assert min(pixels.shape[:2]) > 100 and pixels.std() > 0, name


def reevaluated_accuracy(run: Path) -> float:
    """The saved checkpoint's accuracy on the run's 32 synthetic test images (seed 3), computed here: the images
    normalised with the checkpoint's statistics, the argmax of the logits, without the package's loaders."""
    model, checkpoint = load_trained(run)
    test = SyntheticShapes(32, 32, split="test", seed=3)
    mean, std = (torch.tensor(checkpoint[key]).view(1, 3, 1, 1) for key in ("mean", "std"))
    with torch.no_grad():
        predictions = model((test.images.float() / 255 - mean) / std).argmax(dim=-1)
    return (predictions == torch.tensor(test.targets)).sum().item() / len(test)




def test_cli_tiny_run_writes_history_metrics_checkpoint_and_figures(dataloader_run, tmp_path):
    out, metrics = dataloader_run
    saved = json.loads((out / "metrics.json").read_text())
    history = json.loads((out / "history.json").read_text())
    assert saved == json.loads(json.dumps(metrics))  # metrics.json holds the metrics returned
    assert saved["test_acc"] == metrics["test_acc"] == history["test_acc"][-1] == reevaluated_accuracy(out)
    assert history["epoch"] == [1, 2, 3] and saved["epochs"] == 3
    assert history["train_loss"][0] > history["train_loss"][1] > history["train_loss"][2]  # it learns
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(history) and rows[0][:3] == ["epoch", "train_loss", "train_acc"]
    assert [float(v) for v in next(zip(*rows[1:]))] == history["epoch"] and len(rows) == 4
    assert saved["parameters"] == 21_162
    # 1,704,384 multiply-accumulates per image: Eq. 1 64 x 48 x 32 = 98,304; Eq. 2 2 x (4 x 65 x 32^2 + 2 x 65^2 x
    # 32) = 1,073,280; Eq. 3 2 x 2 x 65 x 32 x 64 = 532,480; head 320. 3 epochs of 64 images x 3 passes.
    assert saved["forward_flops_per_image"] == 2 * 1_704_384
    assert saved["training_flops"] == 3 * 2 * 1_704_384 * 64 * 3
    assert 0 < saved["train_seconds_this_run"] < saved["wall_seconds_this_run"]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 3
    assert_figures(out)
    matplotlib.use("Agg")
    from vit_replication.visualize import plot_history

    plot_history(history).savefig(tmp_path / "curves.png", dpi=110, bbox_inches="tight")
    assert np.array_equal(png_pixels(out / "curves.png"), png_pixels(tmp_path / "curves.png"))  # of the history


@pytest.mark.parametrize("extra", [["--loader", "dataloader"], ["--loader", "device"],
                                   ["--loader", "device", "--mixup", "0.8", "--cutmix", "1.0"],
                                   ["--loader", "device", "--optimizer", "muon"]])
def test_cli_resume_equals_uninterrupted_run(tmp_path, extra, no_figures):
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


def test_cli_device_loader_writes_figures_and_learns_the_same_task(device_run):
    out, metrics = device_run
    assert_figures(out, ("predictions", "confusion", "rollout"))
    assert metrics["args"]["loader"] == "device" and metrics["test_acc"] == reevaluated_accuracy(out)


def test_load_trained_reads_a_cli_run_and_rebuilds_the_model(dataloader_run):
    run, _ = dataloader_run
    model, checkpoint = load_trained(run)
    saved = torch.load(run / "checkpoint.pt", weights_only=False)
    assert checkpoint["epoch"] == 3 and checkpoint["classes"] == saved["classes"]
    assert checkpoint["mean"] == saved["mean"] and len(checkpoint["std"]) == 3  # the run's own normalisation
    for key, value in saved["model"].items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.training


def test_load_trained_without_a_run_uses_the_shipped_model(dataloader_run, tmp_path, capsys):
    run, _ = dataloader_run
    shipped = export_trained(run, tmp_path / "assets")
    assert shipped.stat().st_size < (run / "checkpoint.pt").stat().st_size / 2  # fp16, no optimizer
    capsys.readouterr()
    model, checkpoint = load_trained(tmp_path / "missing", shipped=tmp_path / "assets")
    assert f"No run of your own in {tmp_path / 'missing'}: using the model shipped in" in capsys.readouterr().out
    load_trained(None, shipped=tmp_path / "assets")  # no run asked for: only the model it uses is named
    assert capsys.readouterr().out.startswith(f"Using the model shipped in {tmp_path / 'assets'}.")
    full = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, full[key].half().float(), rtol=0, atol=0)
    with pytest.raises(UserError, match="no trained model: neither"):
        load_trained(tmp_path / "missing", shipped=tmp_path / "nothing")


def test_cli_mixing_and_channels_last_change_the_run_as_they_should(device_run, tmp_path, no_figures):
    base = ARGS + ["--epochs", "1", "--loader", "device"]  # device_run's arguments
    train.main(base + ["--channels-last", "--out", str(tmp_path / "cl")])
    train.main(base + ["--mixup", "0.8", "--out", str(tmp_path / "mixup")])
    plain, cl, mixup = (torch.load(d / "checkpoint.pt", weights_only=False)["model"]
                        for d in (device_run[0], tmp_path / "cl", tmp_path / "mixup"))
    # channels-last changes only how the Conv2d weight is laid out in memory, not what is computed
    assert all(torch.allclose(plain[k], cl[k], atol=1e-5) for k in plain)
    assert not all(torch.allclose(plain[k], mixup[k], atol=1e-3) for k in plain)  # MixUp changes the training


def test_cli_time_budget_plans_epochs_from_step_times_and_trains_like_a_fixed_epoch_run(tmp_path, monkeypatch,
                                                                                       capsys, no_figures):
    # step times are injected (100 s a training step, 0.5 s an evaluation batch), so the plan does not depend on how
    # fast this machine is: 2 steps (x budget.EPOCH_MARGIN) + 1 evaluation batch = 220.5 s an epoch; the budget
    # holds 3 epochs, the final evaluation and up to 100 s of data loading, model building and checkpoint timing, but
    # not a 4th epoch
    monkeypatch.setattr(budget, "time_steps", lambda *args, **kwargs: (100.0, 0.5))
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    argv = ARGS + ["--time-budget", str(3 * (200 * budget.EPOCH_MARGIN + 0.5) + 0.5 + 100), "--save-every", "2"]
    planned = train.main(argv + ["--out", str(tmp_path / "budget")])
    epochs = planned["epochs"]
    assert epochs == 3 and f"{epochs} epochs planned" in capsys.readouterr().out
    # the injected step times stay in place: neither a fixed-epoch run nor a resumed budgeted run plans again
    fixed = train.main(ARGS + ["--epochs", str(epochs), "--out", str(tmp_path / "fixed")])
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("budget", "fixed"))
    assert a["epoch"] == b["epoch"] == a["epochs_planned"] == epochs
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert planned["test_acc"] == fixed["test_acc"]
    # resuming a budgeted run keeps its planned schedule (not --epochs' default of 10): nothing is left to train
    resumed = train.main(argv + ["--resume", "--out", str(tmp_path / "budget")])
    assert resumed["epochs"] == epochs and resumed["test_acc"] == planned["test_acc"]


def assert_trained_like_fixed_epochs(tmp_path, planned: dict, recipe: list, epochs: int) -> None:
    """The budgeted run in tmp_path/budget equals a --epochs run of the same recipe: weights, learning rates,
    accuracy."""
    fixed = train.main(ARGS + recipe + ["--epochs", str(epochs), "--out", str(tmp_path / "fixed")])
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("budget", "fixed"))
    assert a["epochs_planned"] == b["epochs_planned"] == epochs
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"]["lr"] == b["history"]["lr"] and planned["test_acc"] == fixed["test_acc"]


def test_cli_time_budget_plans_again_after_the_first_epoch_and_trains_like_a_fixed_epoch_run(tmp_path, monkeypatch,
                                                                                              capsys, no_figures):
    # injected step times plan 5 epochs (2 steps of 100 s x budget.EPOCH_MARGIN + 1 evaluation batch of 0.5 s
    # each, with up to 100 s of start-up); the re-plan after the first epoch is replaced by 7, so that the test
    # checks what follows it: the schedule and the phases (16x16 for the first round(7 / 2) = 4 epochs instead of
    # round(5 / 2) = 2) are those of a 7-epoch run
    monkeypatch.setattr(budget, "time_steps", lambda *args, **kwargs: (100.0, 0.5))
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    seen = []
    monkeypatch.setattr(budget, "replanned_epochs", lambda plan, *args: seen.append(plan.epochs) or 7)
    recipe = ["--loader", "device", "--low-res-size", "16", "--low-res-fraction", "0.5", "--patch-dropout", "0.25"]
    argv = ARGS + recipe + ["--time-budget", str(5 * (200 * budget.EPOCH_MARGIN + 0.5) + 0.5 + 100)]
    planned = train.main(argv + ["--out", str(tmp_path / "budget")])
    out = capsys.readouterr().out
    assert seen == [5] and "5 epochs planned" in out and "7 epochs in all (planned before it: 5)" in out
    assert "the first 4 of 7 epochs at 16x16 pixels" in out
    assert planned["epochs"] == 7 and planned["plan"]["epochs"] == 5 and planned["plan"]["replans"] == [[1, 7]]
    assert_trained_like_fixed_epochs(tmp_path, planned, recipe, 7)


def test_cli_time_budget_with_wsd_plans_again_while_the_peak_is_held_and_trains_like_a_fixed_epoch_run(
        tmp_path, monkeypatch, capsys, no_figures):
    # as above, 5 epochs planned; the re-plans are replaced: 10 after the first epoch, 8 after every later one. With
    # --decay wsd (2 steps an epoch) a plan of E epochs holds the peak for its first 2E - round(0.4E) steps, so the
    # run can change its plan after every epoch that ends by then: after epochs 1-6 of the 8-epoch plan (13 steps),
    # and the epochs already trained are those of an 8-epoch run (16x16 for the first 4 of 8, as for 5 of 10)
    monkeypatch.setattr(budget, "time_steps", lambda *args, **kwargs: (100.0, 0.5))
    monkeypatch.setattr(budget, "FIGURES_SECONDS", 0.0)
    seen = []

    def replanned(plan, config, epoch_seconds, *args):
        seen.append((plan.epochs, len(epoch_seconds)))
        return 10 if len(epoch_seconds) == 1 else 8

    monkeypatch.setattr(budget, "replanned_epochs", replanned)
    recipe = ["--loader", "device", "--low-res-size", "16", "--low-res-fraction", "0.5", "--decay", "wsd"]
    argv = ARGS + recipe + ["--time-budget", str(5 * (200 * budget.EPOCH_MARGIN + 0.5) + 0.5 + 100)]
    planned = train.main(argv + ["--out", str(tmp_path / "budget")])
    out = capsys.readouterr().out
    assert seen == [(5, 1), (10, 2), (8, 3), (8, 4), (8, 5), (8, 6)]
    assert "10 epochs in all (planned before it: 5)" in out and "epoch 2 took" in out
    assert "8 epochs in all (planned before it: 10)" in out and "the first 4 of 8 epochs at 16x16 pixels" in out
    assert planned["epochs"] == 8 and planned["plan"]["replans"] == [[1, 10], [2, 8]]
    assert_trained_like_fixed_epochs(tmp_path, planned, recipe, 8)


def test_low_resolution_phase_and_eval_every(tmp_path, capsys):
    metrics = train.main(ARGS + ["--epochs", "4", "--loader", "device", "--low-res-size", "16",
                                 "--low-res-fraction", "0.5", "--eval-every", "3", "--patch-dropout", "0.25",
                                 "--precision", "bf16", "--attention", "explicit", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "the first 2 of 4 epochs at 16x16 pixels" in out and "precision bf16" in out
    history = json.loads((tmp_path / "history.json").read_text())
    assert [a is not None for a in history["test_acc"]] == [False, False, True, True]  # epoch 3 and the last
    assert metrics["runtime"]["dynamic_image_size"] and metrics["runtime"]["patch_dropout"] == 0.25
    # the work done, per image: 2 epochs at 16x16 (16 patches embedded, 12 kept + class token = 13 tokens):
    # 16 x 48 x 32 + 2 x (4 x 13 x 32^2 + 2 x 13^2 x 32) + 2 x 2 x 13 x 32 x 64 + 320 = 259,520 MACs; 2 at 32x32
    # (64 embedded, 48 kept, 49 tokens): 64 x 48 x 32 + 2 x (4 x 49 x 32^2 + 2 x 49^2 x 32) + 2 x 2 x 49 x 32 x 64
    # + 320 = 1,208,768 MACs; 64 images an epoch, 3 passes, 2 FLOPs per MAC
    assert metrics["training_flops"] == 3 * 2 * 64 * (2 * 259_520 + 2 * 1_208_768)
    assert metrics["forward_flops_per_image"] == 2 * 1_704_384  # evaluation: 32x32, every token
    assert_figures(tmp_path, ("curves",))


def test_preset_defaults_can_be_overridden_both_ways():
    from vit_replication.train import parse_args

    assert parse_args(["--preset", "cifar10-cpu"]).randaugment is False  # the preset's choice
    assert parse_args(["--preset", "cifar10-cpu", "--randaugment"]).randaugment is True
    assert parse_args([]).randaugment is True and parse_args(["--no-randaugment"]).randaugment is False
    assert parse_args(["--preset", "cifar10-cpu", "--low-res-fraction", "0.5"]).low_res_fraction == 0.5


def test_cli_init_mimetic_trains_from_the_mimetic_weights(tmp_path, monkeypatch, no_figures):
    from vit_replication.mimetic import initialise, sincos_position_embedding

    started = {}

    def spy(model, init):
        model = initialise(model, init)
        started.update(init=init, position=model.embedding.position_embedding.detach().clone())
        return model

    monkeypatch.setattr(train, "initialise", spy)
    metrics = train.main(ARGS + ["--epochs", "1", "--init", "mimetic", "--out", str(tmp_path)])
    assert started["init"] == "mimetic" and metrics["args"]["init"] == "mimetic"
    torch.testing.assert_close(started["position"][0, 1:], sincos_position_embedding(8, 32))
    assert train.parse_args([]).init == "timm"
