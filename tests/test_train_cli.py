import csv
import json
import math
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from vit_replication import train
from vit_replication.data.synthetic import SyntheticShapes
from vit_replication.errors import UserError
from vit_replication.training import budget, loop
from vit_replication.weights.checkpoint import save_checkpoint
from vit_replication.weights.trained import describe_trained, export_trained, load_trained

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


@pytest.fixture
def clocked(monkeypatch, step_clock):
    """``train.run`` timed on the step clock: the job's start, the budget's evaluation and the training's progress
    all read it, and the ViT it builds advances it (0.5 s a training forward pass, 0.125 s an evaluation one)."""
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=step_clock))
    monkeypatch.setattr(train, "progress_for", partial(budget.progress_for, clock=step_clock))
    initialise = train.initialise
    monkeypatch.setattr(train, "initialise", lambda model, init: step_clock.hook(initialise(model, init)))
    return step_clock


def budget_for(training_seconds: float, clock) -> float:
    """The --time-budget that leaves ``training_seconds`` for training on the step clock: the set-up spends one
    evaluation (the untrained model's: 1 test batch), and two more and the figures' seconds are kept aside."""
    return training_seconds + 3 * clock.eval_seconds + budget.FIGURES_SECONDS


class Interrupted(Exception):
    """A run stopped from outside (a crash, a killed job) after a checkpoint was written."""


def interrupt_after(saves: int):
    """A stand-in for ``loop.save_checkpoint`` that writes the checkpoint, then stops the run at the ``saves``-th."""
    written = []

    def save_then_stop(*args, **kwargs):
        save_checkpoint(*args, **kwargs)
        written.append(args[0])
        if len(written) == saves:
            raise Interrupted

    return save_then_stop


def without_times(history: dict) -> dict:
    """The history without its wall-clock epoch times (the one entry that differs between equal runs)."""
    return {key: values for key, values in history.items() if key != "epoch_time"}


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
    assert history["steps"] == [2, 2, 2] and history["low_res_steps"] == [0, 0, 0]
    assert saved["steps"] == 6 and saved["budget"] == "6 steps"  # --epochs 3 of 64 images in batches of 32
    assert history["train_loss"][0] > history["train_loss"][1] > history["train_loss"][2]  # it learns
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(history) == list(loop.HISTORY)
    assert [float(v) for v in next(zip(*rows[1:]))] == history["epoch"] and len(rows) == 4
    assert saved["parameters"] == 21_162
    # 1,704,384 multiply-accumulates per image: Eq. 1 64 x 48 x 32 = 98,304; Eq. 2 2 x (4 x 65 x 32^2 + 2 x 65^2 x
    # 32) = 1,073,280; Eq. 3 2 x 2 x 65 x 32 x 64 = 532,480; head 320. 6 steps of 32 images x 3 passes.
    assert saved["forward_flops_per_image"] == 2 * 1_704_384
    assert saved["training_flops"] == 3 * 2 * 1_704_384 * 64 * 3
    assert 0 < saved["train_seconds_this_run"] < saved["wall_seconds_this_run"]
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 3
    assert_figures(out)
    matplotlib.use("Agg")
    from vit_replication.analysis.visualize import plot_history

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
    assert (resumed["epoch"], resumed["step"]) == (full["epoch"], full["step"]) == (2, 4)
    for key, value in full["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert without_times(resumed["history"]) == without_times(full["history"])


@pytest.mark.parametrize("limit", ["epochs", "time_budget"])
def test_cli_resume_after_an_interruption_continues_as_the_uninterrupted_run(tmp_path, limit, clocked, monkeypatch,
                                                                              no_figures):
    """A run stopped after the checkpoint of epoch 2 (of a 3-epoch run, or of a budget that ends in epoch 3) and
    resumed ends as the run that was never stopped: the learning rate's decay, the progress and the budget are
    restored from the checkpoint."""
    argv = ARGS + ["--epochs", "3"] if limit == "epochs" else ARGS + ["--time-budget", str(budget_for(2.5, clocked))]
    full = train.main(argv + ["--out", str(tmp_path / "full")])
    with monkeypatch.context() as patch:
        patch.setattr(loop, "save_checkpoint", interrupt_after(2))
        with pytest.raises(Interrupted):
            train.main(argv + ["--out", str(tmp_path / "part")])
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    resumed = train.main(argv + ["--out", str(tmp_path / "part"), "--resume"])
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False) for d in ("full", "part"))
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == ((3, 6) if limit == "epochs" else (3, 5))
    assert a["warmup_end"] == b["warmup_end"] < 1 and a["budget_seconds"] == b["budget_seconds"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert without_times(a["history"]) == without_times(b["history"])
    assert resumed["test_acc"] == full["test_acc"] and resumed["budget"] == full["budget"]


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


def test_describe_trained_names_the_model_its_recipe_time_machine_and_accuracy():
    metrics = {"model": "vit_cifar_tiny", "parameters": 208_074, "args": {"time_budget": 600.0}, "epochs": 30,
               "command": "python -m vit_replication.train --preset short-cpu --time-budget 600",
               "train_seconds_all_epochs": 571.0, "precision": "fp32", "test_acc": 0.7993,
               "machine": "AMD EPYC (AVX2 only), 2 threads, torch 2.14.1",
               "loaded": "ImageFolder data/cifar10-jpg/train"}
    assert describe_trained(metrics) == (
        "vit_cifar_tiny (208,074 parameters), --preset short-cpu within a 10-minute budget: 30 epochs, 10 min of "
        "training (fp32, AMD EPYC (AVX2 only)); test accuracy 79.93% (CIFAR-10, JPEG copy)")
    epochs = metrics | {"command": "train.py", "args": {"time_budget": None}, "loaded": "SyntheticShapes"}
    assert describe_trained(epochs).startswith("vit_cifar_tiny (208,074 parameters), its own recipe within 30 epochs")


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


def test_cli_time_budget_trains_until_the_budget_is_spent_and_records_it(tmp_path, clocked, capsys, no_figures):
    """On the step clock the budget leaves 2.5 s for training: an epoch is 2 training steps of 0.5 s and an evaluation
    of 0.125 s, so the third epoch starts at 2.25 s and stops after its first step, which ends at 2.75 s. The learning
    rate follows the share of the budget spent: the decay starts where the warm-up (2 steps) ended, p = 1.125 / 2.5."""
    config = train.parse_args(ARGS + ["--time-budget", str(budget_for(2.5, clocked)), "--out", str(tmp_path)])
    model, metrics = train.run(config)
    assert "--time-budget" in capsys.readouterr().out
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3] and history["steps"] == [2, 2, 1]
    assert metrics["steps"] == 5 and metrics["epochs"] == 3 and metrics["budget"] == f"{2.5:.0f} s of training"
    assert json.loads((tmp_path / "metrics.json").read_text())["budget"] == metrics["budget"]
    assert None not in history["test_acc"] and metrics["test_acc"] == history["test_acc"][-1]
    # the last step of each epoch: the warm-up's peak; then the cosine from p = 0.45 to 1 at p = 0.65 and 0.9
    cosine = [0.5 * (1 + math.cos(math.pi * (p - 0.45) / 0.55)) for p in (0.65, 0.9)]
    assert history["lr"] == pytest.approx([1e-3] + [1e-3 * c for c in cosine])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["budget_seconds"] == 2.5 and checkpoint["step"] == 5
    assert checkpoint["warmup_end"] == pytest.approx(0.45)
    assert all(torch.equal(value, checkpoint["model"][key]) for key, value in model.state_dict().items())


def test_cli_time_budget_that_leaves_no_training_time_is_a_one_line_error(tmp_path, clocked, capsys):
    """All of it taken by the set-up's evaluation, the two kept aside and the figures: exit status 2, one line
    naming --time-budget, and no output folder."""
    with pytest.raises(SystemExit) as exit_info:
        train.main(ARGS + ["--time-budget", str(budget_for(0, clocked)), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: --time-budget {budget_for(0, clocked):g} s leaves no time for training")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("removed", [["--ema", "0.999"], ["--patch-dropout-fraction", "0.5"]])
def test_removed_options_are_rejected_by_the_parser(removed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(ARGS + ["--epochs", "1", "--out", str(tmp_path / "run")] + removed)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]  # argparse prints its usage before it
    assert errors == [f"python -m vit_replication.train: error: unrecognized arguments: {' '.join(removed)}"]
    assert not (tmp_path / "run").exists()


def test_low_resolution_phase_and_eval_every(tmp_path, capsys):
    # 4 epochs of 2 steps; the first 30 % of the steps at 16x16: steps 0-2 (p = 0, 0.125, 0.25), into epoch 2
    metrics = train.main(ARGS + ["--epochs", "4", "--loader", "device", "--low-res-size", "16",
                                 "--low-res-fraction", "0.3", "--eval-every", "3", "--patch-dropout", "0.25",
                                 "--precision", "bf16", "--attention", "explicit", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "precision bf16" in out and "2 of 2 steps at low resolution" in out
    assert "1 of 2 steps at low resolution" in out
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["low_res_steps"] == [2, 1, 0, 0] and history["steps"] == [2, 2, 2, 2]
    assert [a is not None for a in history["test_acc"]] == [False, False, True, True]  # epoch 3 and the last
    assert metrics["runtime"]["dynamic_image_size"] and metrics["runtime"]["patch_dropout"] == 0.25
    # the work done, per image: 3 steps at 16x16 (16 patches embedded, 12 kept + class token = 13 tokens):
    # 16 x 48 x 32 + 2 x (4 x 13 x 32^2 + 2 x 13^2 x 32) + 2 x 2 x 13 x 32 x 64 + 320 = 259,520 MACs; 5 at 32x32
    # (64 embedded, 48 kept, 49 tokens): 64 x 48 x 32 + 2 x (4 x 49 x 32^2 + 2 x 49^2 x 32) + 2 x 2 x 49 x 32 x 64
    # + 320 = 1,208,768 MACs; 32 images a step, 3 passes, 2 FLOPs per MAC
    assert metrics["training_flops"] == 3 * 2 * 32 * (3 * 259_520 + 5 * 1_208_768)
    assert metrics["forward_flops_per_image"] == 2 * 1_704_384  # evaluation: 32x32, every token
    assert_figures(tmp_path, ("curves",))


def test_preset_defaults_can_be_overridden_both_ways():
    from vit_replication.train import parse_args

    assert parse_args(["--preset", "cifar10-cpu"]).randaugment is False  # the preset's choice
    assert parse_args(["--preset", "cifar10-cpu", "--randaugment"]).randaugment is True
    assert parse_args([]).randaugment is True and parse_args(["--no-randaugment"]).randaugment is False
    assert parse_args(["--preset", "cifar10-cpu", "--low-res-fraction", "0.5"]).low_res_fraction == 0.5


def test_cli_init_mimetic_trains_from_the_mimetic_weights(tmp_path, monkeypatch, no_figures):
    from vit_replication.training.mimetic import initialise, sincos_position_embedding

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
