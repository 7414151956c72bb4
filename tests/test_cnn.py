"""The CNN beside the ViT: its size against a count by hand and against the CPU recipe's ViT, that it can learn, and
that it trains through the same pipeline as the ViT."""

import json
from functools import partial
from types import SimpleNamespace

import torch

from vit_replication.analysis.flops import forward_macs as vit_macs
from vit_replication.analysis.report import machine
from vit_replication.data import build_transform, make_loader, synthetic_sets
from vit_replication.model import CONFIGS, ViT, count_parameters
from vit_replication.training import budget
from vit_replication.training.config import TrainConfig
from vit_replication.training.loop import Run, evaluate, train_step
from vit_replication.training.precision import cpuinfo_field, grad_scaler
from vit_replication.variants import cnn
from vit_replication.variants.cnn import CNN, forward_macs, train_cnn


def test_size_counted_by_hand_and_matched_to_the_cpu_vit():
    model = CNN(10, widths=(32, 64, 128, 256))
    # (in, out, output pixels) of every 3x3 convolution: the stem at 32x32, then each group's first convolution at
    # its input size (the max-pool follows it) and its second at half that size
    convs = [(3, 32, 32), (32, 64, 32), (64, 64, 16), (64, 128, 16), (128, 128, 8), (128, 256, 8), (256, 256, 4)]
    conv_macs = sum(9 * c_in * c_out * size * size for c_in, c_out, size in convs)
    assert forward_macs(model) == conv_macs + 256 * 10  # and the head (the counter counts products only)
    weights = sum(9 * c_in * c_out for c_in, c_out, _ in convs) + 256 * 10 + 10
    norms = 2 * sum(c_out for _, c_out, _ in convs)
    assert sum(p.numel() for p in model.parameters()) == weights + norms
    vit = CONFIGS["vit_cifar_cpu"]
    assert abs(forward_macs(model) / vit_macs(vit)["total"] - 1) < 0.05  # the same compute per image, within 5 %
    assert abs(weights + norms - count_parameters(ViT(vit))) / count_parameters(ViT(vit)) < 0.05
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_the_cnn_can_learn():
    """32 fixed images memorised within 40 steps of the training loop's ``train_step``."""
    torch.manual_seed(0)
    train, _ = synthetic_sets(16, build_transform(16, train=False), None, sizes=(32, 1))
    loaders = make_loader(train, 32, train=True), make_loader(train, 32, train=False)
    model, device = CNN(10, widths=(8, 16, 32)), torch.device("cpu")
    config = TrainConfig(lr=3e-3, weight_decay=0.0, label_smoothing=0.0, device="cpu")
    run, scaler = Run.create(config, model, loaders, device), grad_scaler(device, "fp32")
    assert evaluate(model, loaders[1], device)["acc"] < 0.5
    model.train()
    for _ in range(40):
        for images, labels in loaders[0]:
            train_step(run, images, labels, scaler)
    assert evaluate(model, loaders[1], device)["acc"] > 0.9


def test_train_cnn_runs_the_vit_pipeline_and_writes_its_metrics(tmp_path, capsys, monkeypatch):
    config = TrainConfig(dataset="synthetic", train_size=64, test_size=32, batch_size=32, epochs=2, loader="device",
                         randaugment=False, precision="fp32", progress=False, out=str(tmp_path / "cnn"),
                         low_res_size=16, patch_dropout=0.25, device="cpu")  # the ViT's own settings, ignored
    fitted, fit = [], cnn.fit

    def spy(run, progress, resume=None):
        fitted.append((run, progress.describe(), resume))
        return fit(run, progress, resume)

    monkeypatch.setattr(cnn, "fit", spy)
    model, metrics = train_cnn(config, command="test")
    (run, progress, resume), = fitted  # one Run, fitted for the 2 epochs' 4 steps by the ViT's fit
    assert isinstance(run, Run) and run.model is model and progress == "4 steps" and resume is None
    stored = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    assert stored["test_acc"] == metrics["test_acc"] and stored["epochs"] == 2
    assert stored["args"]["low_res_size"] is None and stored["args"]["patch_dropout"] == 0.0
    history = json.loads((tmp_path / "cnn" / "history.json").read_text())
    assert history["test_acc"][-1] == metrics["test_acc"] and history["steps"] == [2, 2]
    assert history["low_res_steps"] == [0, 0]  # 32x32 throughout
    checkpoint = torch.load(tmp_path / "cnn" / "checkpoint.pt", weights_only=False)
    assert (checkpoint["epoch"], checkpoint["step"]) == (2, 4)
    assert all(torch.equal(value, checkpoint["model"][key]) for key, value in model.state_dict().items())
    correct = sum(int((model.eval()(images).argmax(-1) == labels).sum()) for images, labels in
                  _test_batches(config))
    assert correct == round(metrics["test_acc"] * 32)  # the reported accuracy is the model's on the test set
    assert "precision fp32 (as asked)" in capsys.readouterr().out
    # the hardware it ran on, as train.run records it: the CPU's model name and the threads PyTorch used
    assert stored["machine"] == machine() and f"{torch.get_num_threads()} threads" in stored["machine"]
    assert (cpuinfo_field("model name") or "") in stored["machine"]


def test_train_cnn_with_a_time_budget_stops_when_it_is_spent(tmp_path, step_clock, monkeypatch):
    """The budget is ``budget.progress_for``'s, on the step clock: the set-up spends the FLOP count's forward pass
    and the untrained model's evaluation (0.125 s each), two evaluations and the figures' seconds are kept aside,
    and the 1.25 s left hold one epoch (2 steps of 0.5 s and an evaluation) and one step of the second."""
    monkeypatch.setattr(cnn, "time", SimpleNamespace(perf_counter=step_clock))
    monkeypatch.setattr(cnn, "progress_for", partial(budget.progress_for, clock=step_clock))
    monkeypatch.setattr(cnn, "CNN", lambda num_classes: step_clock.hook(CNN(num_classes, widths=(8, 16, 32))))
    config = TrainConfig(dataset="synthetic", train_size=64, test_size=32, batch_size=32, loader="device",
                         randaugment=False, precision="fp32", progress=False, out=str(tmp_path), device="cpu",
                         time_budget=1.25 + 2 * 0.125 + 2 * 0.125 + budget.FIGURES_SECONDS)
    _, metrics = train_cnn(config)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["epoch"] == [1, 2] and history["steps"] == [2, 1] and metrics["epochs"] == 2
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["budget_seconds"] == 1.25


def _test_batches(config):
    from vit_replication.data.pipeline import run_data

    return run_data(config, 32).test_loader
