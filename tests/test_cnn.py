"""The CNN beside the ViT: its size against a count by hand and against the CPU recipe's ViT, that it can learn, and
that it trains through the same pipeline as the ViT."""

import json

import torch
from torch import nn

from vit_replication.cnn import CNN, forward_macs, train_cnn
from vit_replication.data import build_transform, make_loader, synthetic
from vit_replication.engine import evaluate, train_one_epoch
from vit_replication.flops import forward_macs as vit_macs
from vit_replication.model import CONFIGS, ViT, count_parameters
from vit_replication.optim import build_optimizer
from vit_replication.precision import cpuinfo_field
from vit_replication.recipe import TrainConfig
from vit_replication.report import machine


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
    """32 fixed images memorised within 40 steps (as the ViT's test in test_engine.py)."""
    torch.manual_seed(0)
    train, _ = synthetic(16, build_transform(16, train=False), None, sizes=(32, 1))
    loader = make_loader(train, 32, train=True)
    model = CNN(10, widths=(8, 16, 32))
    optimizer, loss_fn, device = build_optimizer(model, 3e-3, weight_decay=0.0), nn.CrossEntropyLoss(), "cpu"
    for _ in range(40):
        train_one_epoch(model, loader, optimizer, None, loss_fn, torch.device(device), progress=False)
    assert evaluate(model, make_loader(train, 32, train=False), loss_fn, torch.device(device), progress=False)[
        "acc"] > 0.9


def test_train_cnn_runs_the_vit_pipeline_and_writes_its_metrics(tmp_path, capsys):
    config = TrainConfig(dataset="synthetic", train_size=64, test_size=32, batch_size=32, epochs=2, loader="device",
                         randaugment=False, precision="fp32", progress=False, out=str(tmp_path / "cnn"),
                         low_res_size=16, patch_dropout=0.25)  # the ViT's own settings, ignored
    model, metrics = train_cnn(config, command="test")
    stored = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    assert stored["test_acc"] == metrics["test_acc"] and stored["epochs"] == 2
    assert stored["args"]["low_res_size"] is None and stored["args"]["patch_dropout"] == 0.0
    history = json.loads((tmp_path / "cnn" / "history.json").read_text())
    assert history["test_acc"][-1] == metrics["test_acc"]
    correct = sum(int((model.eval()(images).argmax(-1) == labels).sum()) for images, labels in
                  _test_batches(config))
    assert correct == round(metrics["test_acc"] * 32)  # the reported accuracy is the model's on the test set
    assert "precision fp32 (as asked)" in capsys.readouterr().out
    # the hardware it ran on, as train.run records it: the CPU's model name and the threads PyTorch used
    assert stored["machine"] == machine() and f"{torch.get_num_threads()} threads" in stored["machine"]
    assert (cpuinfo_field("model name") or "") in stored["machine"]


def _test_batches(config):
    from vit_replication.pipeline import run_data

    return run_data(config, 32).test_loader
